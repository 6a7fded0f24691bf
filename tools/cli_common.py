"""Shared pieces of the `loyalty` sub-commands: errors with exit codes, options, JSON output."""
from __future__ import annotations

from functools import wraps
from typing import Callable, Optional

import click
import orjson

from schemas.policy import PolicyError
from schemas.timeutil import parse_rfc3339_ms
from streams.settings import Settings

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


class UserError(click.ClickException):
    """A bad input or an unreachable service: a short message and exit code 2."""
    exit_code = EXIT_USAGE


class NotFound(click.ClickException):
    """The thing asked for does not exist (exit code 1)."""
    exit_code = EXIT_NOT_FOUND


def friendly(func: Callable) -> Callable:
    """Turn the project's known errors into short messages instead of tracebacks."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        from kafka.errors import KafkaError
        from tools.broker import BrokerError
        from tools.produce import ProduceError
        from tools.query import QueryError
        try:
            return func(*args, **kwargs)
        except (BrokerError, ProduceError, QueryError, PolicyError, KafkaError, OSError) as exc:
            raise UserError(str(exc) or exc.__class__.__name__) from None
    return wrapper


def echo_json(data: object) -> None:
    """Print data as indented JSON."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def parse_time(value: Optional[str], what: str) -> Optional[int]:
    """Parse an RFC 3339 option value into epoch ms, or fail with exit code 2."""
    if value is None:
        return None
    try:
        return parse_rfc3339_ms(value)
    except ValueError:
        raise UserError(f"{what}: {value!r} is not an RFC 3339 timestamp with an offset, "
                        f"e.g. 2026-01-31T00:00:00Z") from None


def broker_option(func: Callable) -> Callable:
    """Add --broker and --embedded options that build a Settings object."""
    func = click.option("--broker", envvar="LOYALTY_BROKER", default="kafka://127.0.0.1:9092", show_default=True,
                        help="Kafka bootstrap address (LOYALTY_BROKER).")(func)
    func = click.option("--broker-kind", envvar="LOYALTY_BROKER_KIND", default="kafka", show_default=True,
                        type=click.Choice(["kafka", "embedded"]),
                        help="'embedded' turns on the workarounds for the embedded broker (LOYALTY_BROKER_KIND).")(func)
    return func


def check_broker(broker: str) -> str:
    """Return broker if it is a list of host:port addresses (kafka:// optional), else fail with exit code 2."""
    from tools.broker import bootstrap_servers
    servers = bootstrap_servers(broker)
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            servers = []
    if not servers:
        raise UserError(f"--broker: {broker!r} is not a broker address such as kafka://127.0.0.1:9092")
    return broker


def settings_from(broker: str, broker_kind: str, **overrides) -> Settings:
    """Build settings from the common options."""
    return Settings(broker=check_broker(broker), broker_kind=broker_kind, **overrides)
