"""`loyalty dlq`: count, show and export the dead letters, and re-drive fixed ones to customer-events."""
from __future__ import annotations

from typing import Optional

import click
import orjson

from streams.kafka_auth import KAFKA_AUTH_ENV
from streams.settings import DLQ_TOPIC
from tools.cli_common import UserError, broker_option, echo_json, env_epilog, friendly, settings_from

_REASON = click.option("--reason", help="Only the dead letters with this reason, e.g. invalid_field.")


def _letters(broker: str, broker_kind: str, reason: Optional[str]) -> list[dict]:
    """Read the dead letters (exit 2 if the DLQ topic does not exist)."""
    from tools.dead_letters import dead_letters  # here: the CLI starts without the Kafka clients
    settings = settings_from(broker, broker_kind)
    try:
        return list(dead_letters(settings.broker, reason))
    except KeyError:
        raise UserError(f"topic {DLQ_TOPIC} does not exist: run `loyalty topics create` first") from None


@click.group()
def dlq() -> None:
    """The dead-letter topic: what was refused and why, and sending it again once fixed."""


@dlq.command("list", epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def dlq_list(broker: str, broker_kind: str, as_json: bool) -> None:
    """Count the dead letters by reason and event type, with examples."""
    from tools.dead_letters import summary  # here: the CLI starts without the Kafka clients
    report = summary(_letters(broker, broker_kind, None))
    if as_json:
        echo_json(report)
        return
    click.echo(f"{report['total']} dead letters in {DLQ_TOPIC}")
    for group in report["groups"]:
        click.echo(f"{group['count']:>8}  {group['reason']:<28} {group['event_type']}")
        for example in group["examples"]:
            where = f"{example['dlq']['partition']}/{example['dlq']['offset']}"
            click.echo(f"{'':>10}e.g. {where:<9} key {example['key'] or '-'}: {example['error']}")


@dlq.command("show", epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@_REASON
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, as `dlq export` does.")
@friendly
def dlq_show(broker: str, broker_kind: str, reason: Optional[str], limit: int, as_json: bool) -> None:
    """Show dead letters in full: reason, error, origin and the refused record."""
    for line in _letters(broker, broker_kind, reason)[:limit]:
        if as_json:
            click.echo(orjson.dumps(line).decode())
            continue
        source = line["source"] or {}
        click.echo(f"{line['dlq']['partition']}/{line['dlq']['offset']}  {line['reason']}  key {line['key'] or '-'}  "
                   f"(from {source.get('topic')} {source.get('partition')}/{source.get('offset')})")
        click.echo(f"  error  {line['error']}")
        shown = orjson.dumps(line["event"]).decode() if line["event"] is not None else \
            f"({line.get('raw_encoding')}) {line.get('raw')}"
        click.echo(f"  record {shown}")


@dlq.command("export", epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@_REASON
@friendly
def dlq_export(broker: str, broker_kind: str, reason: Optional[str]) -> None:
    """Write every dead letter as a JSON line to stdout: fix its `event`, then `loyalty dlq redrive` the file."""
    lines = _letters(broker, broker_kind, reason)
    for line in lines:
        click.echo(orjson.dumps(line).decode())
    click.echo(f"exported {len(lines)} dead letters", err=True)


@dlq.command("redrive", epilog=env_epilog({"LOYALTY_POLICY": "the policy the workers run (currency, limits)",
                                           **KAFKA_AUTH_ENV}))
@broker_option
@click.argument("file", type=click.File("rb"))
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), envvar="LOYALTY_POLICY",
              help="The workers' loyalty.toml: lines are validated with its currency and limits.")
@friendly
def dlq_redrive(broker: str, broker_kind: str, file, policy_file: Optional[str]) -> None:
    """Validate each line of FILE (events, or `dlq export` lines) and send the valid ones to customer-events.

    Events keep their event_id, so one applied before is not applied twice. Exit 1 if a line is still invalid.
    """
    from schemas.policy import load_policy  # here: the CLI starts without the Kafka clients
    from tools.dead_letters import check_lines, redrive
    from tools.produce import read_lines
    settings = settings_from(broker, broker_kind)
    sent, invalid = redrive(settings, check_lines(read_lines(file), load_policy(policy_file)))
    for item in invalid:
        click.echo(f"line {item.line}: {item.problem}", err=True)
    click.echo(f"redrive: sent {sent} events to customer-events; {len(invalid)} still invalid", err=True)
    if invalid:
        raise click.exceptions.Exit(1)
