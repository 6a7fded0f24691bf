"""Shared pieces of the `loyalty` sub-commands: errors with exit codes, options, JSON output."""
from __future__ import annotations

import os
import signal
import sys
from functools import wraps
from typing import Callable, NoReturn, Optional

import click
import orjson

from schemas.policy import PolicyError
from schemas.timeutil import parse_rfc3339_ms
from streams.kafka_auth import KafkaAuth
from streams.settings import DEFAULTS, BrokerAddressError, Settings, parse_broker

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
        # here, when a command runs: these modules load the Kafka clients, which `loyalty --help` does without
        from kafka.errors import KafkaError
        from streams.worker import StartupError
        from tools.broker import BrokerError
        from tools.produce import ProduceError
        from tools.query import QueryError
        before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        try:
            interrupt_on_stop_signals()  # so that a command stopped midway runs its `finally` (children, files)
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return result
        except BrokenPipeError:
            pipe_closed()
        except (BrokerError, ProduceError, QueryError, PolicyError, StartupError, KafkaError, OSError) as exc:
            raise UserError(str(exc) or exc.__class__.__name__) from None
        except KeyboardInterrupt:
            signum = _stop_signals_received[-1] if _stop_signals_received else signal.SIGINT
            click.echo(f"loyalty {click.get_current_context().info_name}: stopped ({signal.Signals(signum).name})",
                       err=True)
            sys.exit(128 + signum)  # as a shell reports the signal
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
    return wrapper


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop_signals_received: list[int] = []


def _interrupt(signum: int, _frame: object) -> None:
    """Note the signal and raise KeyboardInterrupt where the command is."""
    _stop_signals_received.append(signum)
    raise KeyboardInterrupt


def interrupt_on_stop_signals() -> list[int]:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt; return the list the signals received are added to.

    Also in a background job, which a shell starts with SIGINT ignored: Ctrl-C or `kill -INT` must stop
    `tail --follow` and a starting worker as they would in the foreground (Faust, once it runs, handles
    both signals itself).
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    return _stop_signals_received


def pipe_closed() -> NoReturn:
    """End quietly when the reader of stdout has gone (`loyalty query ... | head`), as a Unix tool does."""
    # Python would complain again when it flushes stdout at exit: point stdout at /dev/null first.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)  # 141, what a shell reports for a tool killed by SIGPIPE


def env_epilog(variables: dict[str, str]) -> str:
    """List the environment variables a command reads without a flag (click keeps `\\b` paragraphs as they are)."""
    return "\b\nAlso read from the environment:\n" + "\n".join(f"  {k:<26} {v}" for k, v in variables.items())


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


def setting_option(*decls: str, setting: str, **kwargs) -> Callable:
    """A click option whose default, shown in --help, is the default of that Settings field."""
    return click.option(*decls, default=DEFAULTS[setting], show_default=True, **kwargs)


def broker_option(func: Callable) -> Callable:
    """Add --broker and --embedded options that build a Settings object."""
    func = setting_option("--broker", setting="broker", envvar="LOYALTY_BROKER",
                          help="Kafka bootstrap address: kafka://host:port or host:port, comma-separated "
                               "for several.")(func)
    func = setting_option("--broker-kind", setting="broker_kind", envvar="LOYALTY_BROKER_KIND",
                          type=click.Choice(["kafka", "embedded"]),
                          help="'embedded' turns on the workarounds for the embedded broker.")(func)
    return func


def check_broker(broker: str) -> str:
    """Return broker if it is kafka://host:port or host:port (or a comma-separated list), else fail with exit 2."""
    try:
        parse_broker(broker)
    except BrokerAddressError as exc:
        # The error names the part it refuses, i.e. the whole address when only one is given.
        raise UserError(f"--broker: {exc}; give kafka://host:port or host:port, "
                        f"comma-separated for several (--broker / LOYALTY_BROKER)") from None
    return broker


class InputFile(click.File):
    """click.File whose unreadable file is one line with exit 2, not click's usage error of three."""

    def fail(self, message: str, param: Optional[click.Parameter] = None, ctx: Optional[click.Context] = None):
        name = param.human_readable_name if param is not None else "file"
        raise UserError(f"{name}: {message}")


def settings_from(broker: str, broker_kind: str, **overrides) -> Settings:
    """Build settings from the common options (exit 2 on LOYALTY_* variables that are not understood)."""
    broker = check_broker(broker)
    try:
        KafkaAuth.from_env()  # read again by each client; checked here so that a mistake is one line
        return Settings(broker=broker, broker_kind=broker_kind, **overrides)
    except ValueError as exc:
        raise UserError(f"environment: {exc}") from None
