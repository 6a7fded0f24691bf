"""The worker's batch step, free of Faust: validate, fold per partition, collect outputs, count."""
from __future__ import annotations

import base64
import time
from collections import Counter
from typing import Callable, Iterable, NamedTuple, Optional

import orjson

from projections.partition import PartitionFold
from projections.state import Effect
from projections.views import Totals
from schemas.policy import Policy
from schemas.validate import Rejection, validate_message
from streams.metrics import LoyaltyMetrics
from streams.settings import DLQ_TOPIC, INPUT_TOPIC, OUTPUT_TOPICS

_MS = 1000.0


class Record(NamedTuple):
    """One input message as the pipeline needs it."""
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


class Outgoing(NamedTuple):
    """One output message: topic, partition, key, value (already serialised).

    Every output topic has as many partitions as the input, and an effect is about a customer of the
    partition that produced it, so it goes to that same partition number: the same one Kafka's default
    (murmur2) partitioner gives its key, without hashing again.
    """
    topic: str
    partition: int
    key: Optional[bytes]
    value: bytes


def dlq_record(record: Record, rejection: Rejection) -> Outgoing:
    """Build the DLQ message: the reason and the original bytes (base64 if not UTF-8)."""
    raw = record.value or b""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    value = {"error": rejection.error, "reason": rejection.reason, "raw": text, "raw_encoding": encoding,
             "key": key, "source": {"topic": INPUT_TOPIC, "partition": record.partition, "offset": record.offset}}
    return Outgoing(DLQ_TOPIC, record.partition, record.key, orjson.dumps(value))


class Pipeline:
    """Folds batches of input records into the partitions' states and turns effects into output messages."""

    def __init__(self, policy: Policy, metrics: LoyaltyMetrics,
                 open_fold: Callable[[int], PartitionFold], wall_clock_s: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.metrics = metrics
        self.open_fold = open_fold      # builds a partition's fold from the local store (after recovery)
        self.folds: dict[int, PartitionFold] = {}
        self.positions: dict[int, int] = {}  # next offset to process, per partition
        self._wall_clock_s = wall_clock_s   # only for the event-lag metric, never for rules

    def fold(self, partition: int) -> PartitionFold:
        """Return the partition's fold, loading it on first use."""
        fold = self.folds.get(partition)
        if fold is None:
            fold = self.folds[partition] = self.open_fold(partition)
        return fold

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's fold and metrics."""
        self.folds.pop(partition, None)
        self.positions.pop(partition, None)
        self.metrics.forget_partition(partition)

    def totals(self) -> Totals:
        """Sum the totals of the partitions this worker holds."""
        totals = Totals()
        for fold in self.folds.values():
            totals.merge(fold.totals)
        return totals

    def process(self, records: Iterable[Record]) -> list[Outgoing]:
        """Apply a batch in order; return the messages to send (the caller writes the states)."""
        out: list[Outgoing] = []
        metrics = self.metrics
        now_s = self._wall_clock_s()
        touched: set[int] = set()
        counted: Counter = Counter()  # (event_type, outcome) -> events, added to the metric once per batch
        for record in records:
            started = time.perf_counter()
            self.positions[record.partition] = record.offset + 1
            event = validate_message(record.value, record.key if record.key is not None else b"", self.policy.currency)
            if isinstance(event, Rejection):
                out.append(dlq_record(record, event))
                metrics.dlq_records.labels(event.reason).inc()
                counted["invalid", "rejected"] += 1
                continue
            fold = self.fold(record.partition)
            touched.add(record.partition)
            outcome, effects = fold.apply(event)
            if outcome != "tick":
                counted[event.event_type, outcome] += 1
                if outcome == "applied":
                    metrics.event_lag_seconds.observe(max(0.0, now_s - event.occurred_at_ms / _MS))
            for effect in effects:
                message = self._outgoing(effect, record.partition)
                if message is not None:
                    out.append(message)
            metrics.processing_seconds.observe(time.perf_counter() - started)
        for (event_type, outcome), count in counted.items():
            metrics.count_event(event_type, outcome, count)
        self._update_gauges(touched)
        return out

    def _outgoing(self, effect: Effect, partition: int) -> Optional[Outgoing]:
        """Count an effect and turn it into an output message (a notice is only counted)."""
        record = effect.record
        metrics = self.metrics
        if effect.kind == "ledger":
            metrics.count_ledger_points(record["kind"], record["points"])
        elif effect.kind == "campaign":
            metrics.campaign_triggers.labels(record["campaign"]).inc()
        elif effect.kind == "update":
            if record["kind"] == "status_changed":
                metrics.count_status_transition(record["from"], record["to"])
            elif record["kind"] == "tier_changed":
                metrics.count_tier_transition(record["from"], record["to"])
            else:
                metrics.redemptions_rejected.labels(record["reason"]).inc()
        elif effect.kind == "notice":
            metrics.refunds_unknown_order.inc()
            return None
        return Outgoing(OUTPUT_TOPICS[effect.kind], partition, record["customer_id"].encode(), orjson.dumps(record))

    def _update_gauges(self, partitions: Iterable[int]) -> None:
        """Refresh the gauges from the incrementally kept totals (no table scan)."""
        metrics = self.metrics
        for partition in partitions:
            metrics.set_partition_clock(partition, self.folds[partition].clock_ms / _MS)
        totals = self.totals()
        metrics.points_outstanding.set(totals.points_outstanding)
        for status, count in totals.by_status.items():
            metrics.customers_by_status.labels(status).set(count)
        for tier, count in totals.by_tier.items():
            metrics.customers_by_tier.labels(tier).set(count)
