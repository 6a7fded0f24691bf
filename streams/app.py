"""The Faust application: topics, the customer table, the folding agent, the ticker and the views."""
from __future__ import annotations

import time
from typing import Any, Optional

import faust
import orjson
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP

from projections.partition import PartitionFold
from schemas.policy import load_policy
from schemas.timeutil import format_ms
from streams.embedded import enable_embedded_broker_workarounds
from streams.faust_fixes import (ack_fetched, apply_faust_fixes, batch_lock, limit_fetch_wait, read_in_bulk,
                                 serve_only_our_pages)
from streams.kafka_auth import KafkaAuth
from streams.logs import crash_without_commit, lifecycle
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Outgoing, Pipeline, Record
from streams.settings import CUSTOMER_TABLE, INPUT_TOPIC, OUTPUT_TOPICS, DLQ_TOPIC, Settings
from streams.output import BatchSender
from streams.tables import TablePartitionStore
from streams.views import register_views


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    """Declare a topic of raw bytes keys and values."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


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
        conf.update(enable_embedded_broker_workarounds())
    return conf


def _timestamp_ms(timestamp_ms: Optional[int]) -> Optional[int]:
    """Return a Kafka record's timestamp in ms, or None when it has none (-1 or None)."""
    return None if timestamp_ms is None or timestamp_ms < 0 else timestamp_ms


async def write_batch(sender: BatchSender, stores: dict[int, TablePartitionStore], folds: dict[int, PartitionFold],
                      outgoing: list[Outgoing], partitions: set[int], folded_until: dict) -> None:
    """Write a folded batch in the order that loses nothing: outputs, then changelog, then local state.

    Faust acks the batch's offsets when the agent's body returns, after all three. A crash before the
    outputs are acknowledged leaves the changelog and RocksDB as they were, so the batch is applied
    again after a restart and its outputs sent again (with the same ids); a crash later leaves
    states whose outputs are all on their topics, so a redelivered event may rightly be a duplicate.
    """
    # Taken before any await: a rebalance meanwhile may drop the partitions from `stores`.
    changelogs = {partition: (stores[partition], stores[partition].changelog(folds[partition].clock_ms,
                                                                          folded_until.get(partition)))
                  for partition in partitions if partition in stores and partition in folds}
    await sender.send_outputs(outgoing)
    await sender.send_changelog({partition: records for partition, (_, records) in changelogs.items()})
    for store, records in changelogs.values():
        store.save(records)
    sender.mark_persisted()


def create_app(settings: Settings) -> faust.App:
    """Build the worker's Faust app."""
    apply_faust_fixes([INPUT_TOPIC])
    app = faust.App(settings.app_id, **faust_settings(settings))
    policy = load_policy(settings.policy_file)
    metrics = LoyaltyMetrics()
    if settings.faust_sensor:
        # Faust's own sensor (messages in and out, commits, rebalances, table ops) on the same /metrics page.
        app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
    events_topic = _raw_topic(app, INPUT_TOPIC, settings.partitions)
    for name in (*OUTPUT_TOPICS.values(), DLQ_TOPIC):
        _raw_topic(app, name, settings.partitions)  # declared so that Faust checks they exist
    # Faust creates the changelog compacted; the extra configs match `loyalty topics create` (erasure).
    changelog_configs = {k: v for k, v in settings.topic_configs()[settings.changelog_topic].items()
                         if k != "cleanup.policy"}
    customers = app.Table(CUSTOMER_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                          options={"driver": "rocksdict"}, extra_topic_configs=changelog_configs,
                          help="customer_id -> projection state, plus each partition's clock")
    stores: dict[int, TablePartitionStore] = {}

    def open_fold(partition: int) -> PartitionFold:
        """Load a partition's clock, due index and totals from its recovered store."""
        store = stores[partition] = TablePartitionStore(customers, partition)
        fold = PartitionFold(store, policy, clock_ms=store.clock_ms())
        pipeline.folded_until[partition] = store.next_offset()
        fold.load(store.states())
        lifecycle("partition loaded", partition=partition, customers=fold.totals.customers,
                  clock=format_ms(fold.clock_ms), due=len(fold.due))
        return fold

    pipeline = Pipeline(policy, metrics, open_fold)
    sender = BatchSender(app, customers)

    @app.agent(events_topic)
    async def subscribe_to_customer_events(stream):
        """Subscribe the worker to the input topic; its records reach `fold_fetched_records` in bulk."""
        async for _ in stream:  # never reached: the consumer hands this topic's records over in bulk
            pass

    async def fold_fetched_records(fetched: dict) -> None:
        """Fold one fetch of customer events, write its effects and states, then mark its offsets done."""
        records = [Record(tp.partition, r.offset, r.key, r.value, _timestamp_ms(r.timestamp))
                   for tp, fetched_records in fetched.items() for r in fetched_records]
        try:
            outgoing = pipeline.process(records)
            await write_batch(sender, stores, pipeline.folds, outgoing, {tp.partition for tp in fetched},
                              pipeline.folded_until)
        except Exception as exc:
            # Nothing of this batch may be committed: stop at once, so that it is read again after a restart.
            crash_without_commit(exc)
        ack_fetched(app.consumer, {tp: (rs[0].offset, rs[-1].offset) for tp, rs in fetched.items()})

    read_in_bulk(INPUT_TOPIC, fold_fetched_records)
    limit_fetch_wait(settings.fetch_max_wait_ms)

    @app.on_partitions_revoked.connect
    async def forget_revoked_partitions(sender, revoked, **kwargs) -> None:
        """Drop the folds of partitions that move away (they are reloaded after recovery)."""
        partitions = sorted(tp.partition for tp in revoked if tp.topic == INPUT_TOPIC)
        async with batch_lock:  # a batch being written finishes first: its partitions' next owner starts after it
            for partition in partitions:
                pipeline.forget(partition)
                stores.pop(partition, None)
        if partitions:
            lifecycle("partitions revoked", partitions=partitions)

    @app.on_partitions_assigned.connect
    async def log_assigned_partitions(sender, assigned, **kwargs) -> None:
        """Log the partitions this worker now owns (they load after recovery)."""
        lifecycle("partitions assigned", partitions=sorted(tp.partition for tp in assigned if tp.topic == INPUT_TOPIC),
                  generation=app.consumer_generation_id)

    def consumer_lag() -> dict[int, int]:
        """Return records not yet processed per owned partition (from the fetch high watermark)."""
        lags = {}
        for partition, position in list(pipeline.positions.items()):
            highwater = app.consumer.highwater(TP(INPUT_TOPIC, partition))
            if highwater is not None:
                lags[partition] = max(0, highwater - position)
        return lags

    @app.timer(interval=5.0)
    async def report_consumer_lag() -> None:
        """Export records not yet processed per owned partition."""
        for partition, lag in consumer_lag().items():
            metrics.set_consumer_lag(partition, lag)

    def events_read() -> float:
        """Input records folded since this worker started, every outcome (its loyalty_events_total)."""
        return sum(s.value for m in metrics.events.collect() for s in m.samples if s.name.endswith("_total"))

    if settings.progress_seconds > 0:
        last = {"at": time.monotonic(), "read": 0.0}

        @app.timer(interval=settings.progress_seconds)
        async def log_progress() -> None:
            """Log one line: events applied, events read per second, lag and clock of each partition."""
            now, read = time.monotonic(), events_read()
            rate = (read - last["read"]) / max(now - last["at"], 1e-9)
            last.update(at=now, read=read)
            folds, lags = dict(pipeline.folds), consumer_lag()
            lifecycle("progress", events_applied=pipeline.totals().events_applied, events_per_s=round(rate, 1),
                      lag={str(p): lags.get(p, "-") for p in sorted(folds)},
                      clocks={str(p): format_ms(folds[p].clock_ms) for p in sorted(folds)})

    @app.on_before_shutdown.connect
    async def log_stopped(sender, **kwargs) -> None:
        """Log what this worker committed as it stops (its streams are drained by now)."""
        committed: dict = {}
        try:
            await app.consumer.commit()  # Faust's final commit, done here so that the line can report it
            # Faust keeps no public record of committed offsets; _committed_offset is what it last committed.
            committed = dict(app.consumer._committed_offset)
        except Exception as exc:  # e.g. stopped before the consumer started: still say that it stopped
            lifecycle("final commit failed", error=f"{type(exc).__name__}: {exc}")
        lifecycle("worker stopped", events_applied=pipeline.totals().events_applied,
                  partitions=sorted(pipeline.folds),
                  committed={str(tp.partition): offset for tp, offset in sorted(committed.items())
                             if tp.topic == INPUT_TOPIC and offset is not None})

    if settings.clock == "wall":
        @app.timer(interval=settings.tick_seconds or policy.clock.tick_seconds, on_leader=True)
        async def broadcast_clock_tick() -> None:
            """Send a clock.tick at the wall time to every partition (the leader only)."""
            at = format_ms(int(time.time() * 1000))
            tick = orjson.dumps({"event_id": f"tick-{at}", "event_type": "clock.tick", "customer_id": None,
                                 "occurred_at": at, "schema_version": 1, "payload": {}})
            for partition in range(settings.partitions):
                await events_topic.send(value=tick, partition=partition)

    serve_only_our_pages(app)
    register_views(app, pipeline, metrics, customers, settings)
    return app
