"""The worker's Faust app: `create_app` wires it; the handlers below it fold, watch partitions, tick and report."""
from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional

import faust
import orjson
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP

from schemas.policy import Policy, load_policy
from schemas.timeutil import format_ms
from streams.embedded import embedded_faust_settings
from streams.faust_app import LoyaltyApp
from streams.fold_loader import TableFoldLoader
from streams.kafka_auth import KafkaAuth
from streams.logs import crash_without_commit, lifecycle
from streams.metrics import LoyaltyMetrics
from streams.output import BatchSender
from streams.pipeline import Outgoing, Pipeline, Record
from streams.settings import CUSTOMER_TABLE, DLQ_TOPIC, INPUT_TOPIC, OUTPUT_TOPICS, Settings
from streams.tables import TablePartitionStore
from streams.checkout_views import register_checkout_views
from streams.http_views import load_owned_folds, register_views


def create_app(settings: Settings, web_socket: Optional[socket.socket] = None) -> LoyaltyApp:
    """Build the worker's Faust app: topics, the customer table, the bulk fold, partition signals, timers, views.

    web_socket: where the web server listens (bound by the worker before it starts), else it binds itself.
    """
    app = LoyaltyApp(settings.app_id, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                     embedded_broker=settings.embedded, web_socket=web_socket, **faust_settings(settings))
    metrics = LoyaltyMetrics()
    if settings.faust_sensor:
        # Faust's own sensor (messages in and out, commits, rebalances, table ops) on the same /metrics page.
        app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
    events_topic = declare_topics(app, settings)
    customers = declare_customer_table(app, settings)
    parts = WorkerParts(app, settings, load_policy(settings.policy_file), metrics, customers)

    # The fold: the app's consumer hands each fetch of the input topic to the folder, then marks it done.
    app.fold_in_bulk(events_topic, parts.folder)
    app.on_partitions_revoked.connect(partial(forget_revoked_partitions, parts))
    app.on_partitions_assigned.connect(partial(log_assigned_partitions, parts))
    app.on_before_shutdown.connect(partial(log_stopped, parts))

    # The timers.
    app.timer(interval=5.0)(named(report_consumer_lag, parts))
    if settings.progress_seconds > 0:
        app.timer(interval=settings.progress_seconds)(named(log_progress, parts, Progress()))
    if settings.clock == "wall":
        app.timer(interval=settings.tick_seconds or parts.pipeline.policy.clock.tick_seconds, on_leader=True)(
            named(broadcast_clock_tick, parts, events_topic))

    # The views.
    views, errors = register_views(app, parts.pipeline, metrics, customers, settings)
    register_checkout_views(app, views, errors)
    return app


def faust_settings(settings: Settings) -> dict:
    """Return the Faust settings for these runtime settings (plus the embedded-broker ones if asked)."""
    conf = dict(
        broker=settings.broker, store="rocksdb://", datadir=str(settings.data_dir),
        topic_partitions=settings.partitions, topic_replication_factor=settings.replication,
        topic_allow_declare=True, processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest", table_standby_replicas=1,
        web_port=settings.web_port, web_bind=settings.web_host, web_in_thread=False,
        canonical_url=settings.canonical_url or f"http://{settings.web_host}:{settings.web_port}",
        producer_linger=0.005, producer_max_batch_size=512 * 1024, stream_buffer_maxsize=16384,
        broker_commit_every=10_000, broker_commit_interval=settings.commit_interval_s, logging_config=None,
        broker_max_poll_records=settings.batch_max_events,
        broker_credentials=KafkaAuth.from_env().faust_credentials(),
        # Faust's own pages would show raw table state and the topology to anyone: only the README's routes.
        web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False, web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    if settings.embedded:
        conf.update(embedded_faust_settings())
    return conf


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    """Declare a topic of raw bytes keys and values."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def declare_topics(app: faust.App, settings: Settings) -> Any:
    """Declare the input, output and DLQ topics (so that Faust checks they exist); return the input topic."""
    events_topic = _raw_topic(app, INPUT_TOPIC, settings.partitions)
    for name in (*OUTPUT_TOPICS.values(), DLQ_TOPIC):
        _raw_topic(app, name, settings.partitions)
    return events_topic


def declare_customer_table(app: faust.App, settings: Settings) -> Any:
    """Declare the customer table, in RocksDB with a changelog."""
    # Faust creates the changelog compacted; the extra configs match `loyalty topics create` (erasure).
    changelog_configs = {k: v for k, v in settings.topic_configs()[settings.changelog_topic].items()
                         if k != "cleanup.policy"}
    return app.Table(CUSTOMER_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                     options={"driver": "rocksdict"}, extra_topic_configs=changelog_configs,
                     help="customer_id -> projection state, plus each partition's clock")


def named(handler: Callable, *args: Any) -> Callable:
    """Give a handler its first arguments, keeping its name and docstring (Faust names a timer by them).

    A plain partial: Faust passes the app to a timer whose signature has parameters left, and this has none.
    """
    bound = partial(handler, *args)
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(bound, attribute, getattr(handler, attribute))
    return bound


class WorkerParts:
    """What the handlers share: the app, the settings, the pipeline, and the stores of the partitions owned."""
    __slots__ = ("app", "settings", "metrics", "customers", "loader", "pipeline", "folder")

    def __init__(self, app: LoyaltyApp, settings: Settings, policy: Policy, metrics: LoyaltyMetrics,
                 customers: Any) -> None:
        self.app, self.settings, self.metrics, self.customers = app, settings, metrics, customers
        self.loader = TableFoldLoader(customers, settings)  # the pipeline opens folds through it; writes use its stores
        self.pipeline = Pipeline(policy, metrics, self.loader, clock=settings.clock)
        self.folder = FetchFolder(self.pipeline, self.loader, BatchSender(app, customers))


# --- The fold ---

def _timestamp_ms(timestamp_ms: Optional[int]) -> Optional[int]:
    """Return a Kafka record's timestamp in ms, or None when it has none (-1 or None)."""
    return None if timestamp_ms is None or timestamp_ms < 0 else timestamp_ms


class FetchFolder:
    """Folds each fetch of customer events and writes it; the app's consumer then marks its offsets done."""
    __slots__ = ("pipeline", "loader", "sender")

    def __init__(self, pipeline: Pipeline, loader: TableFoldLoader, sender: BatchSender) -> None:
        self.pipeline, self.loader, self.sender = pipeline, loader, sender

    async def fold_and_write(self, fetched: dict) -> None:
        """Fold one fetch, {TP: [aiokafka ConsumerRecord, ...]}, and write its effects and states."""
        pipeline = self.pipeline
        records = [Record(tp.partition, r.offset, r.key, r.value, _timestamp_ms(r.timestamp))
                   for tp, fetched_records in fetched.items() for r in fetched_records]
        try:
            outgoing = pipeline.process(records)
            await write_batch(self.sender, self.loader.stores, pipeline, outgoing, {tp.partition for tp in fetched})
        except Exception as exc:
            # Nothing of this batch may be committed: stop at once, so that it is read again after a restart.
            crash_without_commit(exc)


async def write_batch(sender: BatchSender, stores: dict[int, TablePartitionStore], pipeline: Pipeline,
                      outgoing: list[Outgoing], partitions: set[int]) -> None:
    """Write a folded batch in the order that loses nothing: outputs, then changelog, then local state.

    The consumer marks the batch's offsets done after all three. A crash before the
    outputs are acknowledged leaves the changelog and RocksDB as they were, so the batch is applied
    again after a restart and its outputs sent again (with the same ids); a crash later leaves
    states whose outputs are all on their topics, so a redelivered event may rightly be a duplicate.
    """
    # Taken before any await: a rebalance meanwhile may drop the partitions from `stores`.
    folds = {partition: pipeline.loaded(partition) for partition in partitions if partition in stores}
    changelogs = {partition: (stores[partition], stores[partition].changelog(
                      fold.clock_ms, pipeline.folded_until_offset(partition), fold.schedule))
                  for partition, fold in folds.items() if fold is not None}
    await sender.send_outputs(outgoing)
    await sender.send_changelog({partition: records for partition, (_, records) in changelogs.items()})
    for store, records in changelogs.values():
        store.save(records)
    sender.mark_persisted()


# --- The partitions moving in and out, and the stop ---

async def forget_revoked_partitions(parts: WorkerParts, sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Drop the folds of partitions that move away (they are reloaded after recovery)."""
    partitions = sorted(tp.partition for tp in revoked if tp.topic == INPUT_TOPIC)
    async with parts.app.consumer.batch_lock:  # a batch being written finishes first: its next owner starts after it
        for partition in partitions:
            parts.pipeline.forget(partition)
            parts.loader.forget(partition)
    if partitions:
        lifecycle("partitions revoked", partitions=partitions)


async def log_assigned_partitions(parts: WorkerParts, sender: Any, assigned: Any, **kwargs: Any) -> None:
    """Log the partitions this worker now owns (they load after recovery); drop the gauges of the others."""
    partitions = sorted(tp.partition for tp in assigned if tp.topic == INPUT_TOPIC)
    parts.metrics.keep_partitions(partitions)
    lifecycle("partitions assigned", partitions=partitions, generation=parts.app.consumer_generation_id)


async def log_stopped(parts: WorkerParts, sender: Any, **kwargs: Any) -> None:
    """Log what this worker committed as it stops (its streams are drained by now)."""
    committed: dict = {}
    consumer = parts.app.consumer
    try:
        await consumer.commit()  # Faust's final commit, done here so that the line can report it
        committed = consumer.committed_offsets()
    except Exception as exc:  # e.g. stopped before the consumer started: still say that it stopped
        lifecycle("final commit failed", error=f"{type(exc).__name__}: {exc}")
    # A partition assigned again by a rebalance loads on its next record or lag report: count it anyway
    # (if it cannot load now, the line still comes, with what is loaded).
    with contextlib.suppress(Exception):
        load_owned_folds(parts.app, parts.pipeline)
    lifecycle("worker stopped", events_applied=parts.pipeline.totals().events_applied,
              partitions=parts.pipeline.loaded_partitions(), batch_in_flight=consumer.batch_at_stop,
              committed={str(tp.partition): offset for tp, offset in sorted(committed.items())
                         if tp.topic == INPUT_TOPIC and offset is not None})


# --- The timers ---

def fetched_ends(parts: WorkerParts) -> dict[int, int]:
    """Return the fetch high watermark of each loaded partition (none before its first fetch)."""
    ends = {}
    for partition in parts.pipeline.loaded_partitions():
        highwater = parts.app.consumer.highwater(TP(INPUT_TOPIC, partition))
        if highwater is not None:
            ends[partition] = highwater
    return ends


def consumer_lag(parts: WorkerParts, ends: Optional[dict[int, int]] = None) -> dict[int, int]:
    """Return records not yet processed per loaded partition (from the fetch high watermark)."""
    pipeline, lags = parts.pipeline, {}
    for partition, highwater in (fetched_ends(parts) if ends is None else ends).items():
        # Before its first record since the assignment: the offset its saved states were folded up to.
        position = pipeline.position(partition)
        if position is not None:
            lags[partition] = max(0, highwater - position)
    return lags


async def report_consumer_lag(parts: WorkerParts) -> None:
    """Load the partitions assigned by a rebalance, then export their clock, end offset and lag."""
    load_owned_folds(parts.app, parts.pipeline)
    metrics, ends = parts.metrics, fetched_ends(parts)
    for partition, end_offset in ends.items():
        metrics.set_partition_end_offset(partition, end_offset)
    for partition, lag in consumer_lag(parts, ends).items():
        metrics.set_consumer_lag(partition, lag)


@dataclass
class Progress:
    """When the last progress line was logged (monotonic seconds), and how many events had been read by then."""
    at: float = field(default_factory=time.monotonic)
    read: float = 0.0


def events_read(metrics: LoyaltyMetrics) -> float:
    """Input records folded since this worker started, every outcome (its loyalty_events_total)."""
    return sum(s.value for m in metrics.events.collect() for s in m.samples if s.name.endswith("_total"))


async def log_progress(parts: WorkerParts, last: Progress) -> None:
    """Log one line: events applied, events read per second, lag and clock of each partition."""
    now, read = time.monotonic(), events_read(parts.metrics)
    rate = (read - last.read) / max(now - last.at, 1e-9)
    last.at, last.read = now, read
    pipeline, lags = parts.pipeline, consumer_lag(parts)
    folds = {partition: pipeline.loaded(partition) for partition in pipeline.loaded_partitions()}
    lifecycle("progress", events_applied=parts.pipeline.totals().events_applied, events_per_s=round(rate, 1),
              lag={str(p): lags.get(p, "-") for p in sorted(folds)},
              clocks={str(p): format_ms(folds[p].clock_ms) for p in sorted(folds)})


async def broadcast_clock_tick(parts: WorkerParts, events_topic: Any) -> None:
    """Send a clock.tick at the wall time to every partition (the leader only)."""
    at = format_ms(int(time.time() * 1000))
    tick = orjson.dumps({"event_id": f"tick-{at}", "event_type": "clock.tick", "customer_id": None,
                         "occurred_at": at, "schema_version": 1, "payload": {}})
    for partition in range(parts.settings.partitions):
        await events_topic.send(value=tick, partition=partition)
