"""The worker's batch step, free of Faust: validate, fold per partition, collect outputs, count."""
from __future__ import annotations

import time
from collections import Counter
from functools import partial
from typing import Any, Callable, Iterable, NamedTuple, Optional, Protocol

import orjson

from projections.isolation import Poisoned, PoisonedRecord, fold_batch
from projections.partition import PartitionFold
from projections.effects import (BecameDormant, CampaignTriggered, CouponChanged, Effect, LedgerEntryMade, Outcome,
                                 RefundOfUnknownOrder, RequestRefused, StatusChanged, TierChanged, ValueChanged)
from projections.documents import Totals
from schemas.policy import Policy
from schemas.validate import Rejection, validate_record
from schemas.timeutil import format_ms
from streams.dlq import dlq_value
from streams.logs import warning
from streams.metrics import LoyaltyMetrics, observe_many
from streams.settings import DLQ_TOPIC, TOPIC_OF

_MS = 1000.0
INVALID = "invalid"  # the event_type label of a record refused before its type was known
APPLIED, REDELIVERED, COUNTED_APART = Outcome.APPLIED, Outcome.REDELIVERED, (Outcome.TICK, Outcome.POLICY)
# An event this far behind its partition's clock suggests the clock ran ahead (e.g. a wall-clock worker
# fed a historical backfill): every rule then judges the event late. Said once per partition.
_FAR_BEHIND_MS = 30 * 86_400_000
# What moved the clock ahead differs by --clock: the wall ticker, or a later event or tick sent first.
_FAR_BEHIND_ADVICE = {
    "wall": "a historical backfill wants `loyalty worker --clock event`",
    "event": "an event or clock.tick later than these was sent before them: send a history in time order, "
             "and check the producers' occurred_at",
}


class Record(NamedTuple):
    """One input message as the pipeline needs it (timestamp_ms: the Kafka record's timestamp)."""
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: Optional[int] = None


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


# Builds an Outgoing from a tuple of its fields, cheaper than calling the class (one or more per event).
_new_outgoing = partial(tuple.__new__, Outgoing)


class OpenedFold(NamedTuple):
    """A partition's fold as loaded, and the input offset its saved states already include (None: unknown)."""
    fold: PartitionFold
    folded_until: Optional[int] = None


class FoldLoader(Protocol):
    """Where the pipeline opens a partition's folds (the worker's: streams/fold_loader.py, from its recovered table)."""

    def open_fold(self, partition: int, policy: Policy) -> OpenedFold:
        """Load the partition's fold under the worker's policy, with the offset its states include."""


def processing_error(error: BaseException) -> Rejection:
    """Describe a fold that raised as the DLQ's `processing_error`."""
    return Rejection("processing_error", f"{type(error).__name__}: {str(error)[:200]}")


def dlq_record(record: Record, rejection: Rejection, max_raw_bytes: int,
               exception: Optional[BaseException] = None) -> Outgoing:
    """Build the DLQ message: the reason and the original bytes (base64 if not UTF-8, cut if too large)."""
    value = dlq_value(record.partition, record.offset, record.key, record.value, rejection.reason,
                      rejection.error, max_raw_bytes, type(exception).__name__ if exception is not None else None)
    return Outgoing(DLQ_TOPIC, record.partition, record.key, value)


class _Attempt:
    """What one pass over a partition's records produced; counted in the metrics only if it is kept."""

    def __init__(self) -> None:
        self.out: list[Outgoing] = []
        self.effects: list[Effect] = []
        self.counted: Counter = Counter()  # (event_type, Outcome) -> events
        self.dlq_reasons: Counter = Counter()
        self.lags_s: list[float] = []
        self.durations_s: list[float] = []
        self.far_behind: Optional[tuple[int, int]] = None  # the first (clock, occurred_at) far behind the clock
        self.redelivered = 0  # records the customer's saved state already holds


class Pipeline:
    """Folds batches of input records into the partitions' states and turns effects into output messages."""

    def __init__(self, policy: Policy, metrics: LoyaltyMetrics, loader: FoldLoader,
                 wall_clock_s: Callable[[], float] = time.time, clock: str = "wall") -> None:
        self.policy = policy
        self.clock = clock  # the worker's --clock: the far-behind warning's advice depends on it
        self.metrics = metrics
        self.loader = loader  # opens a partition's fold from the local store (after recovery)
        self.folds: dict[int, PartitionFold] = {}
        self.positions: dict[int, int] = {}  # next offset to process, per partition
        # Per partition, the input offset its states already include (saved with them, given by the loader):
        # a record below it was folded before a crash or rebalance and is skipped without a look.
        self.folded_until: dict[int, Optional[int]] = {}
        self._wall_clock_s = wall_clock_s   # only for the event-lag metric, never for rules
        self._warned_far_behind: set[int] = set()

    def fold(self, partition: int) -> PartitionFold:
        """Return the partition's fold, loading it on first use."""
        fold = self.folds.get(partition)
        if fold is None:
            fold, self.folded_until[partition] = self.loader.open_fold(partition, self.policy)
            self.folds[partition] = fold
            self.metrics.set_partition_clock(partition, fold.clock_ms / _MS)
        return fold

    def loaded(self, partition: int) -> Optional[PartitionFold]:
        """Return the partition's fold if it is loaded (never loads it)."""
        return self.folds.get(partition)

    def loaded_folds(self) -> list[PartitionFold]:
        """Return the loaded folds (a copy: a rebalance may drop one meanwhile)."""
        return list(self.folds.values())

    def loaded_partitions(self) -> list[int]:
        """Return the partitions whose folds are loaded, in order."""
        return sorted(self.folds)

    def folded_until_offset(self, partition: int) -> Optional[int]:
        """Return the input offset the partition's states include (saved with them as its next offset)."""
        return self.folded_until.get(partition)

    def position(self, partition: int) -> Optional[int]:
        """Return the next offset to process; before the first record since loading, where its states end."""
        return self.positions.get(partition, self.folded_until.get(partition))

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's fold (reloaded if it comes back).

        Its gauges stay: a rebalance revokes every partition and assigns most of them again, and a clock
        or lag that vanished meanwhile would look like a partition nobody owns (the worker drops the
        series of the partitions it did not get back when the new assignment arrives).
        """
        self.folds.pop(partition, None)
        self.positions.pop(partition, None)
        self.folded_until.pop(partition, None)

    def totals(self) -> Totals:
        """Sum the totals of the partitions this worker holds."""
        totals = Totals()
        for fold in self.folds.values():
            totals.merge(fold.totals)
        return totals

    def process(self, records: Iterable[Record]) -> list[Outgoing]:
        """Apply a batch, in order within each partition; return the messages to send (the caller saves states)."""
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        now_s = self._wall_clock_s()
        out: list[Outgoing] = []
        touched = []
        for partition, part in by_partition.items():
            self.fold(partition)  # loads folded_until with the states
            folded_until = self.folded_until.get(partition)
            if folded_until is not None and part[0].offset < folded_until:
                # Redelivered (Kafka commits lag the states): these events' effects are on their topics already.
                fetched = len(part)
                part = [record for record in part if record.offset >= folded_until]
                self.metrics.redelivered.inc(fetched - len(part))
                if not part:
                    continue
            self.positions[partition] = self.folded_until[partition] = part[-1].offset + 1
            attempt = self._process_partition(partition, part, now_s)
            self._count(attempt)
            self._warn_if_far_behind(partition, attempt)
            out.extend(attempt.out)
            if partition in self.folds:
                touched.append(partition)
        self._update_gauges(touched)
        return out

    def _process_partition(self, partition: int, records: list[Record], now_s: float) -> _Attempt:
        """Fold one partition's records; if one raises, roll the partition back and fold again without it."""
        return fold_batch(self.fold(partition), lambda poisoned: self._attempt(partition, records, poisoned, now_s))

    def _attempt(self, partition: int, records: list[Record], poisoned: Poisoned, now_s: float) -> _Attempt:
        """One pass: validate, fold and serialise each record; raise PoisonedRecord when one fails.

        The loop runs once per event, so what it uses is bound to locals first.
        """
        attempt = _Attempt()
        fold = self.fold(partition)  # its policy in force validates: a policy.changed may change limits
        max_raw_bytes = fold.policy.limits.max_dlq_raw_bytes
        out, all_effects, counted = attempt.out, attempt.effects, attempt.counted
        lags_s, durations_s = attempt.lags_s, attempt.durations_s
        validate, perf_counter, dumps, topic_of = validate_record, time.perf_counter, orjson.dumps, TOPIC_OF.get
        for record in records:
            started = perf_counter()
            error = poisoned.get(record.offset) if poisoned else None
            event = processing_error(error) if error is not None else validate(
                record.value, record.key, fold.policy, record.timestamp_ms)
            if isinstance(event, Rejection):
                out.append(dlq_record(record, event, max_raw_bytes, error))
                attempt.dlq_reasons[event.reason] += 1
                counted[INVALID, Outcome.REJECTED] += 1
                continue
            occurred_at_ms = event.occurred_at_ms
            if attempt.far_behind is None and fold.clock_ms - occurred_at_ms > _FAR_BEHIND_MS:
                attempt.far_behind = (fold.clock_ms, occurred_at_ms)  # as it arrives, not after the batch
            try:
                outcome, effects = fold.apply(event, record.offset)
                for effect in effects:  # a failed attempt is dropped whole, so messages go straight to `out`
                    topic = topic_of(type(effect))
                    if topic is not None:  # else a notice, only counted
                        data = effect.record
                        out.append(_new_outgoing((topic, partition, data["customer_id"].encode(), dumps(data))))
            except Exception as exc:  # no input may stop a partition: isolate the event, keep the rest
                raise PoisonedRecord(record.offset, exc) from exc
            all_effects.extend(effects)
            if outcome is REDELIVERED:
                attempt.redelivered += 1
            elif outcome not in COUNTED_APART:
                counted[event.event_type, outcome] += 1
                if outcome is APPLIED:
                    lags_s.append(max(0.0, now_s - occurred_at_ms / _MS))
            durations_s.append(perf_counter() - started)
        return attempt

    def _warn_if_far_behind(self, partition: int, attempt: _Attempt) -> None:
        """Log once per partition when events arrive far behind its clock (the clock ran ahead of them)."""
        if attempt.far_behind is None or partition in self._warned_far_behind:
            return
        self._warned_far_behind.add(partition)
        clock_ms, occurred_at_ms = attempt.far_behind
        warning("events arrive far behind the partition clock; every time rule treats them as late "
                f"({_FAR_BEHIND_ADVICE[self.clock]})", partition=partition,
                clock=format_ms(clock_ms), event_time=format_ms(occurred_at_ms))

    def _count(self, attempt: _Attempt) -> None:
        """Add a kept attempt's events, effects and timings to the metrics (one call per label set)."""
        metrics = self.metrics
        metrics.redelivered.inc(attempt.redelivered)
        for (event_type, outcome), count in attempt.counted.items():
            metrics.count_event(event_type, outcome.value, count)
        for reason, count in attempt.dlq_reasons.items():
            metrics.dlq_records.labels(reason).inc(count)
        observe_many(metrics.event_lag_seconds, attempt.lags_s)
        observe_many(metrics.processing_seconds, attempt.durations_s)
        points: Counter = Counter()      # ledger kind -> points moved
        by_label: Counter = Counter()    # (effect type, its labels) -> count
        for effect in attempt.effects:
            match effect:
                case LedgerEntryMade(kind=kind, points=moved):
                    points[kind] += abs(moved)
                case StatusChanged() | TierChanged() | ValueChanged():
                    by_label[type(effect), effect.was, effect.now] += 1
                case RequestRefused(kind=kind, reason=reason):
                    by_label[RequestRefused, kind, reason] += 1
                case CampaignTriggered(campaign=campaign):
                    by_label[CampaignTriggered, campaign, None] += 1
                case CouponChanged(kind=kind):
                    by_label[CouponChanged, kind, None] += 1
                case BecameDormant(tier=tier, value=value):  # churn by the tier and value class held just before
                    by_label[BecameDormant, tier, value] += 1
                case RefundOfUnknownOrder():
                    by_label[RefundOfUnknownOrder, None, None] += 1
                # the other types (checkout updates) are not counted
        for kind, moved in points.items():
            metrics.count_ledger_points(kind, moved)
        for (effect_type, first, second), count in by_label.items():
            _COUNT[effect_type](metrics, first, second, count)

    def _update_gauges(self, partitions: Iterable[int]) -> None:
        """Refresh the gauges from the incrementally kept totals (no table scan)."""
        metrics = self.metrics
        for partition in partitions:
            fold = self.folds[partition]
            metrics.set_partition_clock(partition, fold.clock_ms / _MS)
            metrics.set_policy_version(partition, fold.schedule.in_force.version)
        totals = self.totals()
        metrics.points_outstanding.set(totals.points_outstanding)
        for status, count in totals.by_status.items():
            metrics.customers_by_status.labels(status).set(count)
        for tier, count in totals.by_tier.items():
            metrics.customers_by_tier.labels(tier).set(count)
        for value, count in totals.by_value.items():
            metrics.customers_by_value.labels(value).set(count)


# How each counted type of effect reaches the metrics: (metrics, first label, second label, count).
_COUNT: dict[type, Callable[[LoyaltyMetrics, Any, Any, int], None]] = {
    StatusChanged: lambda m, was, now, n: m.count_status_transition(was, now, n),
    TierChanged: lambda m, was, now, n: m.count_tier_transition(was, now, n),
    ValueChanged: lambda m, was, now, n: m.value_transitions.labels(was, now).inc(n),
    RequestRefused: lambda m, kind, reason, n: m.count_rejection(kind, reason, n),
    CampaignTriggered: lambda m, campaign, _, n: m.campaign_triggers.labels(campaign).inc(n),
    CouponChanged: lambda m, kind, _, n: m.count_coupon_record(kind, n),
    BecameDormant: lambda m, tier, value, n: m.dormant_transitions.labels(tier, value).inc(n),
    RefundOfUnknownOrder: lambda m, _, __, n: m.refunds_unknown_order.inc(n),
}
