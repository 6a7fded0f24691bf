"""`loyalty demo`: the engine on the embedded broker, from nothing, in about a minute."""
from __future__ import annotations

import click

from tools.cli_common import UserError, friendly


@click.command()
@click.option("--events", type=int, default=30_000, show_default=True)
@click.option("--customers", type=int, default=1_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the worker's data and log directory (a failed demo always keeps it).")
@friendly
def demo(events: int, customers: int, seed: int, keep: bool) -> None:
    """Start the embedded broker and a worker, send a synthetic history, show the projections, stop."""
    from tools.demo import DemoError, run_demo  # here: `loyalty --help` starts without the Kafka clients
    try:
        run_demo(events, customers, seed, keep, say=click.echo)
    except DemoError as exc:
        raise UserError(str(exc)) from None
