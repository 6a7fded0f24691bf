"""`loyalty produce` and `loyalty schema`: send events to customer-events, and what an event looks like."""
from __future__ import annotations

from typing import Optional

import click

from schemas.timeutil import format_ms
from streams.kafka_auth import KAFKA_AUTH_ENV
from tools.cli_common import InputFile, UserError, broker_option, env_epilog, friendly, parse_time, settings_from


@click.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.argument("file", required=False, type=InputFile("rb"))
@click.option("--synthetic", type=int, help="Send a synthetic history of about N events.")
@click.option("--customers", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--end", help="End the --synthetic history at this time: 'now' (for a worker on the wall clock) "
                            "or RFC 3339 (default: 2026-02-25).")
@click.option("--tick", "tick_at", help="Broadcast a clock.tick at this RFC 3339 time to every partition.")
@friendly
def produce(broker: str, broker_kind: str, file, synthetic: Optional[int], customers: int, seed: int,
            end: Optional[str], tick_at: Optional[str]) -> None:
    """Send JSON-lines events from FILE (or - for stdin) in file order, a --synthetic history, or a --tick.

    A line over the broker's message size limit is reported, skipped, and the rest sent; the exit code is then 1.
    """
    from tools.produce import read_lines, send_documents, send_lines, tick_event  # here: the CLI starts faster
    from tools.synthetic import parse_end, synthetic_history
    chosen = [x for x in (file, synthetic, tick_at) if x is not None]
    if len(chosen) != 1:
        raise UserError("give exactly one of FILE, --synthetic N or --tick T")
    if end is not None and synthetic is None:
        raise UserError("--end goes with --synthetic N")
    settings = settings_from(broker, broker_kind)
    if tick_at is not None:
        sent = send_documents(settings, [tick_event(format_ms(parse_time(tick_at, "--tick")))])
    elif synthetic is not None:
        if synthetic < 1 or customers < 1:
            raise UserError("--synthetic and --customers must be positive")
        sent = send_documents(settings, synthetic_history(synthetic, customers, seed, end_ms=parse_end(end)))
    else:
        skipped: list[int] = []

        def report(line: int, message: str) -> None:
            skipped.append(line)
            click.echo(message, err=True)
        sent = send_lines(settings, read_lines(file), on_skip=report)
        if skipped:  # the other lines were sent; exit 1 so that a script notices the gap
            click.echo(f"sent {sent} events to customer-events; {len(skipped)} line(s) skipped", err=True)
            raise click.exceptions.Exit(1)
    click.echo(f"sent {sent} events to customer-events", err=True)


@click.command()
def schema() -> None:
    """Print the JSON Schema of a customer-events message (also in schemas/customer-event.schema.json)."""
    from schemas.jsonschema import render  # here: only this command needs it
    click.echo(render().decode(), nl=False)
