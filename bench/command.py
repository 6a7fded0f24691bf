"""`loyalty bench`: measure the engine, its limits and its alternatives in one run, and print one table."""
from __future__ import annotations

import os
import signal
import sys

import click

from tools.cli_common import UserError, echo_json, env_epilog, friendly

_SIZES = ("events", "customers", "latency_seconds", "tick_customers", "tick_due", "policy_customers",
          "rebuild_customers")


@click.command("bench", epilog=env_epilog({
    "LOYALTY_FAUST_SENSOR, ...": "the worker settings of `loyalty worker --help` apply to the workers it starts",
    "LOYALTY_POLICY": "ignored: every consumer runs the default policy"}))
@click.option("--events", type=click.IntRange(min=1), default=300_000, show_default=True,
              help="Events in the backlog (plus a daily tick to every partition).")
@click.option("--customers", type=click.IntRange(min=1), default=30_000, show_default=True,
              help="Customers in the backlog.")
@click.option("--partitions", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--seed", type=int, default=11, show_default=True, help="Seed of the synthetic history.")
@click.option("--latency-seconds", type=click.FloatRange(min=0.5), default=20.0, show_default=True,
              help="How long events are sent at half the 1-worker rate to time produce -> ledger, and how long "
                   "checkout commands are sent over HTTP at 250/s.")
@click.option("--tick-customers", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Customers on the partition whose tick is timed.")
@click.option("--tick-due", type=click.IntRange(min=1), default=1_000, show_default=True,
              help="How many of them are due at that tick.")
@click.option("--policy-customers", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Customers on the partition where a policy change takes effect (the change is timed).")
@click.option("--rebuild-customers", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Customers on the changelog a worker rebuilds from with no data dir.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=10), default=600.0, show_default=True,
              help="Seconds each worker or peer phase may take before it is marked n/a.")
@click.option("--quick", is_flag=True,
              help="Tiny sizes (16,000 events, a 2 s latency run, 20,000 customers on the tick and the rebuild, "
                   "10,000 on the policy change): checks the command end to end in a few minutes; its figures "
                   "mean little. Sizes given as flags win.")
@click.option("--keep-dir", is_flag=True, help="Keep the work directory (logs of the broker, workers and peers).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of a table.")
@click.pass_context
@friendly
def bench(ctx: click.Context, events: int, customers: int, partitions: int, seed: int, latency_seconds: float,
          tick_customers: int, tick_due: int, policy_customers: int, rebuild_customers: int, timeout_s: float,
          quick: bool, keep_dir: bool, as_json: bool) -> None:
    """Measure everything in one run on an embedded broker it starts on a free port, and print one table.

    The limits of this machine (raw read, validation and fold in process), 1 and 2 workers on a backlog,
    latency at half the 1-worker rate, checkout commands over HTTP at 250/s, `loyalty replay`, a
    hand-written aiokafka loop and a Quix Streams app on the same backlog, the worker's memory and state
    sizes, a tick and a policy change on a large partition, and the ratios. Exit code 1 when some figure could not be measured (its row says why).
    """
    # here: `loyalty --help` and the other commands start without the benchmark and its clients
    from bench.progress import Progress
    from bench.run import PHASES, QUICK, BenchOptions, run_bench
    sizes = dict(events=events, customers=customers, latency_seconds=latency_seconds,
                 tick_customers=tick_customers, tick_due=tick_due, policy_customers=policy_customers,
                 rebuild_customers=rebuild_customers)
    if quick:
        for name in _SIZES:
            if ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
                sizes[name] = QUICK[name]
    if sizes["customers"] > sizes["events"]:
        raise UserError("--customers must not exceed --events")
    if sizes["tick_due"] > sizes["tick_customers"]:
        raise UserError("--tick-due must not exceed --tick-customers")
    options = BenchOptions(partitions=partitions, seed=seed, timeout_s=timeout_s, **sizes)
    # Every consumer folds with the default policy; the workers' other LOYALTY_* settings still apply.
    os.environ.pop("LOYALTY_POLICY", None)
    # SIGTERM ends the run through its `finally` blocks, which stop every process it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report = run_bench(options, Progress(PHASES), keep_dir=keep_dir)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())
    if not report.complete:
        raise click.exceptions.Exit(1)
