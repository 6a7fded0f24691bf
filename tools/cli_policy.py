"""`loyalty policy`: publish a rule change to the log, show the policy in force, list every change."""
from __future__ import annotations

import re
from typing import Optional

import click
import orjson

from schemas.policy import PolicyError
from streams.kafka_auth import KAFKA_AUTH_ENV
from tools.cli_common import UserError, broker_option, env_epilog, friendly, parse_time, settings_from


@click.group()
def policy() -> None:
    """Rule changes as events of the log (docs/rules.md, "Policy changes")."""


@policy.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--effective", required=True, help="When the change takes effect (RFC 3339), on each partition's clock.")
@click.option("--name", help="A name for this version (letters, digits, . _ -), shown before its content digest.")
@friendly
def publish(broker: str, broker_kind: str, file: str, effective: str, name: Optional[str]) -> None:
    """Check FILE as the worker's loader does and send it as policy.changed to every partition."""
    from tools.policy_log import publish as send  # here: `loyalty --help` starts without the Kafka clients
    effective_ms = parse_time(effective, "--effective")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise UserError(f"--name: {name!r} must be 1 to 64 letters, digits, '.', '_' or '-'")
    settings = settings_from(broker, broker_kind)
    try:
        document = send(settings, file, effective_ms, name)
    except PolicyError as exc:
        raise UserError(str(exc)) from None
    payload = document["payload"]
    click.echo(f"published policy {payload['version']} effective {payload['effective_at']} to every partition "
               f"({document['event_id']})", err=True)


@policy.command(epilog=env_epilog({"LOYALTY_POLICY": "the first policy, before any change in the log",
                                   **KAFKA_AUTH_ENV}))
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def show(broker: str, broker_kind: str, as_json: bool) -> None:
    """Print the policy in force on each partition (as of its clock) and the changes scheduled."""
    from tools.policy_log import read_policy_log, show_rows  # here: `loyalty --help` starts without Kafka
    settings = settings_from(broker, broker_kind)
    rows = show_rows(read_policy_log(settings, settings.policy_file))
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for row in rows["in_force"]:
        click.echo(f"in force: {row['version']} (since {row['effective_at']}, {row['source']}) "
                   f"on partitions {row['partitions']}")
    for row in rows["scheduled"]:
        click.echo(f"scheduled: {row['version']} at {row['effective_at']} on partitions {row['partitions']}")
    if not rows["in_force"]:
        click.echo("in force: the first policy (the log is empty)")


@policy.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@friendly
def history(broker: str, broker_kind: str, as_json: bool) -> None:
    """List every policy.changed in the log, in log order."""
    from tools.policy_log import read_policy_log  # here: `loyalty --help` starts without the Kafka clients
    settings = settings_from(broker, broker_kind)
    for row in read_policy_log(settings, None).changes:
        click.echo(orjson.dumps(row).decode() if as_json else
                   f"{row['published_at']}  {row['version']}  effective {row['effective_at']}  {row['event_id']}")
