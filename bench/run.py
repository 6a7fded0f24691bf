"""One benchmark run: an embedded broker, the backlog, then every phase in turn, all stopped by PID at the end."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import orjson

from bench.backlog import Backlog, produce_backlog
from bench.checkout import COMMAND_RATE, STREAM_RATE, TARGET_P99_MS, measure_commands
from bench.heavy_state import heavy_state
from bench.latency import measure_latency
from bench.limits import measure_limits
from bench.peer_common import LOOP_TOPICS, QUIX_TOPIC
from bench.peers import run_peer
from bench.policy_change import policy_change_cost
from bench.progress import Progress
from bench.rebuild import measure_rebuild
from bench.report import Report
from bench.step import BATCH, batches, codec_us, floor_cpu_s, worker_step_cpu_s
from bench.state_size import changelog_sizes, store_sizes
from bench.tick import tick_seconds
from bench.workers import BenchError, WorkerGroup, steady_rate
from projections.customer import DEFAULT_POLICY
from streams.gc_tuning import tune_gc
from streams.kafka_log import read_log
from streams.settings import INPUT_TOPIC, Settings
from tools.broker import EmbeddedBroker, create_topics

PHASES = 15


@dataclass
class BenchOptions:
    """The sizes of a run (the flags of `loyalty bench`)."""
    events: int = 300_000
    customers: int = 30_000
    partitions: int = 4
    seed: int = 11
    latency_seconds: float = 20.0
    tick_customers: int = 1_000_000
    tick_due: int = 1_000
    policy_customers: int = 100_000
    rebuild_customers: int = 1_000_000
    timeout_s: float = 600.0  # for each phase that waits on a consumer


#: `--quick`: sizes that check the command end to end in about a minute; the figures mean little.
QUICK = {"events": 16_000, "customers": 1_600, "latency_seconds": 2.0, "tick_customers": 20_000, "tick_due": 200,
         "policy_customers": 10_000, "rebuild_customers": 20_000}


class Run:
    """The state of one run: where it works, its broker, its report and its progress line."""

    def __init__(self, options: BenchOptions, progress: Progress, workdir: Path) -> None:
        self.options = options
        self.progress = progress
        self.workdir = workdir
        self.report = Report(asdict(options), tick_small=10 * options.tick_due)
        self.settings: Settings = None
        self.backlog: Backlog = None
        self.expected = 0  # customer events the backlog holds (what a consumer applies)
        self.applied_total = 0  # customer events on the input topic once the latency run is done

    def phase(self, name: str, keys: list[str], measure: Callable[[], str]) -> None:
        """Run one phase; if it fails, its rows say why and the run goes on."""
        self.progress.phase(name)
        try:
            self.progress.done(measure())
        except Exception as exc:  # one phase's failure must not lose the others' figures
            reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            self.report.missing(keys, reason[:300])
            self.progress.done(f"failed: {reason[:300]}")

    def worker_report(self, expected: int) -> Callable[[int, float], None]:
        """A progress reporter for workers applying `expected` events."""
        return lambda applied, elapsed: self.progress.update(f"{applied:,}/{expected:,} events applied, "
                                                             f"{elapsed:.0f}s")


def run_bench(options: BenchOptions, progress: Progress, keep_dir: bool = False) -> Report:
    """Measure everything in one run on a fresh embedded broker; return the report."""
    tune_gc()  # the in-process limits run with the worker's collector settings
    workdir = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    run = Run(options, progress, workdir)
    broker = EmbeddedBroker(log=workdir / "broker.log")
    try:
        broker.start()
        run.settings = Settings(broker=broker.url, broker_kind="embedded", partitions=options.partitions)
        peer_topics = {name: options.partitions for name in (*LOOP_TOPICS.values(), QUIX_TOPIC)}
        create_topics(run.settings.broker, {**run.settings.topic_partitions(), **peer_topics})
        _backlog(run)
        run.phase("limits in process", ["raw_read", "validation", "fold", "validation_fold"], partial(_limits, run))
        run.phase("worker step and floor in process", ["worker_step", "floor", "state_decode", "state_encode"],
                  partial(_step, run))
        run.expected = run.expected or run.backlog.customer_events  # without the fold's count: every event
        run.phase("loyalty replay", ["replay"], partial(_replay, run))
        for name, key in (("hand-written aiokafka loop", "loop"), ("Quix Streams app", "quix")):
            run.phase(f"peer: {name}", [f"peer_{key}"], partial(_peer, run, key))
        run.phase("2 workers", ["worker_2"], partial(_two_workers, run))
        _one_worker(run)
        run.phase("checkout commands over HTTP", ["command_rate", "command_p50", "command_p99"],
                  partial(_commands, run))
        run.phase("a very active customer's state", ["state_heavy_1y", "state_heavy_2y"], partial(_heavy, run))
        run.phase("tick on a large partition", ["tick_large", "tick_small"], partial(_ticks, run))
        run.phase("policy change on a large partition", ["policy_change"], partial(_policy_change, run))
        run.phase("a worker rebuilding from the changelog", ["rebuild_seconds", "rebuild_rate"],
                  partial(_rebuild, run))
    finally:
        broker.stop()
        if keep_dir:
            progress.note(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run.report.compute_ratios()
    return run.report


def _backlog(run: Run) -> None:
    """Produce the backlog; without it nothing else can be measured."""
    options = run.options
    run.progress.phase("backlog")
    run.backlog = produce_backlog(run.settings, options.events, options.customers, options.seed,
                                  run.workdir / "backlog.jsonl",
                                  lambda sent, total: run.progress.update(f"{sent:,}/{total:,} events sent"))
    run.report.backlog = {"events": run.backlog.events, "records": run.backlog.records}
    rate = run.backlog.events / run.backlog.produce_s
    run.report.set("produce", rate, f"{run.backlog.events:,} lines ({run.backlog.records:,} records) in "
                                    f"{run.backlog.produce_s:.2f}s")
    run.progress.done(f"{run.backlog.events:,} events sent ({run.backlog.records:,} records), {rate:,.0f} lines/s")


def _limits(run: Run) -> str:
    """Raw read, validation, fold and both in process; the fold's count is what each consumer must apply."""
    limits = measure_limits(run.settings, run.backlog.ends, DEFAULT_POLICY)
    for key in ("raw_read", "validation", "fold", "validation_fold"):
        run.report.set(key, getattr(limits, key))
    run.expected = limits.applied
    run.report.backlog["applied"] = limits.applied
    return f"raw {limits.raw_read:,.0f} records/s, validation + fold {limits.validation_fold:,.0f} events/s"


def _step(run: Run) -> str:
    """The worker's step and the floor on the backlog's batches, in this process: CPU µs per record."""
    steps = batches(list(read_log(run.settings.broker, INPUT_TOPIC, run.backlog.ends)))
    records = sum(len(step) for step in steps)
    floor = floor_cpu_s(steps, run.workdir / "floor")
    step, saved = worker_step_cpu_s(steps, DEFAULT_POLICY, run.workdir / "step")
    decode, encode = codec_us(saved)
    run.report.set("worker_step", 1e6 * step / records, f"{len(steps)} batches of up to {BATCH:,} records")
    run.report.set("floor", 1e6 * floor / records)
    run.report.set("state_decode", decode, f"{len(saved):,} states, median {statistics.median(map(len, saved)):,.0f} B")
    run.report.set("state_encode", encode)
    return f"step {1e6 * step / records:.1f} µs/record, floor {1e6 * floor / records:.1f} µs/record"


def _replay(run: Run) -> str:
    """`loyalty replay` as a user runs it, into a store in the work directory; its own events/s."""
    env = {**os.environ, "LOYALTY_BROKER": run.settings.broker, "LOYALTY_BROKER_KIND": "embedded"}
    done = subprocess.run([sys.executable, "-m", "tools", "replay", "--json", "--out", str(run.workdir / "replay")],
                          env=env, capture_output=True, timeout=run.options.timeout_s)
    if done.returncode != 0:
        raise BenchError(f"loyalty replay exited with code {done.returncode}: "
                         f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    summary = orjson.loads(done.stdout)
    run.report.set("replay", summary["records_per_second"],
                   f"{summary['records']:,} records in {summary['seconds']:.1f}s")
    return f"{summary['records_per_second']:,.0f} records/s"


def _peer(run: Run, name: str) -> str:
    """A peer's steady rate on the backlog."""
    rate = run_peer(name, run.settings, run.workdir, run.backlog.records, run.options.timeout_s)
    run.report.set(f"peer_{name}", rate)
    return f"{rate:,.0f} events/s"


def _two_workers(run: Run) -> str:
    """Two workers of one group, started together, on the backlog."""
    group = WorkerGroup(run.settings, run.workdir, 2, "two").start()
    try:
        samples = group.wait_applied(run.expected, run.options.timeout_s, run.worker_report(run.expected))
        each = group.applied_each() or []
    finally:
        group.stop()
    rate = steady_rate(samples)
    run.report.set("worker_2", rate, "events per worker: " + " + ".join(f"{n:,}" for n in each))
    return f"{rate:,.0f} events/s"


def _one_worker(run: Run) -> None:
    """One worker on the backlog, then the latency run on it, then its peak RSS and its state's size."""
    group = WorkerGroup(run.settings, run.workdir, 1, "one")
    try:
        run.phase("1 worker", ["worker_1"], partial(_backlog_on, run, group))
        run.phase("latency at half the 1-worker rate", ["latency_p50", "latency_p99"], partial(_latency, run, group))
        run.phase("worker resources", ["worker_peak_rss", "state_store_median", "state_store_max",
                                       "state_changelog_median", "state_changelog_max"],
                  partial(_resources, run, group))
    finally:
        group.stop()


def _backlog_on(run: Run, group: WorkerGroup) -> str:
    """Start the worker; its rate on the backlog."""
    group.start()
    samples = group.wait_applied(run.expected, run.options.timeout_s, run.worker_report(run.expected))
    rate = steady_rate(samples)
    run.report.set("worker_1", rate)
    return f"{rate:,.0f} events/s"


def _latency(run: Run, group: WorkerGroup) -> str:
    """p50 and p99 from produce to ledger entry at half the 1-worker rate, on that worker."""
    rate = run.report.rows["worker_1"].value
    if rate is None:
        raise BenchError("needs the 1-worker rate")
    result = measure_latency(run.settings, group, rate / 2, run.options.latency_seconds, run.options.seed + 1,
                             run.progress.update)
    note = f"{result.samples:,} ledger entries, {result.offered_per_s:,.0f} events/s offered"
    run.report.set("latency_p50", result.p50_ms, note)
    run.report.set("latency_p99", result.p99_ms, note)
    return f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms"


def _resources(run: Run, group: WorkerGroup) -> str:
    """The worker's peak RSS, then (once it stopped) its state's bytes per customer, in its store and changelog."""
    rss = group.peak_rss_bytes()
    run.applied_total = group.applied() or 0
    group.stop()
    if rss is not None:
        run.report.set("worker_peak_rss", rss / 2**20)
    else:
        run.report.missing(["worker_peak_rss"], "no /proc on this system")
    store = store_sizes(group.data_dirs)
    changelog = changelog_sizes(run.settings, Settings(app_id=group.app_id).changelog_topic)
    run.report.set("state_store_median", store.median, f"{store.customers:,} customers")
    run.report.set("state_store_max", store.largest)
    run.report.set("state_changelog_median", changelog.median, f"{changelog.customers:,} customers")
    run.report.set("state_changelog_max", changelog.largest)
    return f"state median {store.median:,.0f} bytes, max {store.largest:,} bytes"


def _commands(run: Run) -> str:
    """A fresh worker on everything sent so far, then redemptions over HTTP at a steady rate while events stream in."""
    # Its own group, last of the workers: commands carry the wall clock, which the other phases' state must not see.
    group = WorkerGroup(run.settings, run.workdir, 1, "checkout").start()
    try:
        expected = max(run.expected, run.applied_total)
        group.wait_applied(expected, run.options.timeout_s, run.worker_report(expected))
        result = measure_commands(run.settings, group, run.options.latency_seconds, run.options.seed + 2,
                                  run.progress.update)
    finally:
        group.stop()
    statuses = ", ".join(f"{count:,} x {status}" for status, count in sorted(result.statuses.items()))
    note = (f"{result.commands:,} commands at {COMMAND_RATE}/s offered ({statuses}), {result.streamed:,} events "
            f"streamed at {STREAM_RATE}/s; warm-up {result.warmup_s:.1f}s")
    run.report.set("command_rate", result.per_s, note)
    run.report.set("command_p50", result.p50_ms)
    verdict = "under" if result.p99_ms < TARGET_P99_MS else "OVER"
    run.report.set("command_p99", result.p99_ms, f"{verdict} the target of {TARGET_P99_MS:.0f} ms")
    return (f"{result.per_s:,.0f} commands/s, p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms "
            f"(target p99 < {TARGET_P99_MS:.0f} ms)")


def _heavy(run: Run) -> str:
    """The stored state of one customer with ten events a day, after one and two years (in process)."""
    heavy = heavy_state(DEFAULT_POLICY)
    note = f"largest field: {heavy.largest_field}, {heavy.largest_field_bytes:,} bytes"
    run.report.set("state_heavy_1y", heavy.one_year)
    run.report.set("state_heavy_2y", heavy.at_end, note)
    return f"{heavy.one_year:,} bytes after 1 year, {heavy.at_end:,} after 2 ({note})"


def _ticks(run: Run) -> str:
    """One tick with `tick_due` customers due among `tick_customers`, then among ten times `tick_due`."""
    options = run.options
    large = tick_seconds(options.tick_customers, options.tick_due, DEFAULT_POLICY)
    small = tick_seconds(10 * options.tick_due, options.tick_due, DEFAULT_POLICY)
    run.report.set("tick_large", large * 1000)
    run.report.set("tick_small", small * 1000)
    return f"{large * 1000:.1f} ms with {options.tick_customers:,} held, {small * 1000:.1f} ms with " \
           f"{10 * options.tick_due:,}"


def _policy_change(run: Run) -> str:
    """One policy.changed taking effect on a partition of `policy_customers` customers: fold, then encode."""
    cost = policy_change_cost(run.options.policy_customers, DEFAULT_POLICY)
    each_us = 1e6 / cost.customers
    note = (f"fold {cost.fold_s:.2f} s ({cost.fold_s * each_us:.0f} µs a customer, decoding included) + encoding "
            f"every state {cost.encode_s:.2f} s ({cost.state_bytes / 1e6:,.0f} MB to write)")
    run.report.set("policy_change", cost.fold_s + cost.encode_s, note)
    return f"{cost.fold_s + cost.encode_s:.2f} s for {cost.customers:,} customers ({note})"


def _rebuild(run: Run) -> str:
    """A new group's changelog of `rebuild_customers` customers, then its first worker's start with no data dir."""
    result = measure_rebuild(run.settings, run.workdir, run.options.rebuild_customers, DEFAULT_POLICY,
                             run.options.timeout_s, run.progress.update)
    assigned = f"{result.assigned_s:.1f}s to its partitions assigned, then " if result.assigned_s is not None else ""
    cpu = f"; the worker's CPU {result.cpu_s:.1f}s" if result.cpu_s is not None else ""
    note = (f"{result.customers:,} customers, {result.changelog_bytes / 2**20:,.0f} MB of changelog; "
            f"{assigned}recovery and loading{cpu}")
    run.report.set("rebuild_seconds", result.loaded_s, note)
    run.report.set("rebuild_rate", result.customers / result.loaded_s)
    return f"{result.customers:,} customers in {result.loaded_s:.1f}s ({note})"
