"""Prometheus metrics of a worker (docs/outputs.md, "Metrics"), one registry per app."""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from typing import Iterable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from schemas.policy import CAMPAIGNS

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Event lag is wall time minus occurred_at: from a live shop (tens of ms) up to a
# worker catching up after a day of downtime. Older events land in +Inf.
EVENT_LAG_BUCKETS_SECONDS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0,
)
# One evolve plus store write: from in-memory work up to a slow RocksDB flush.
PROCESSING_BUCKETS_SECONDS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)


class LoyaltyMetrics:
    """Hold every metric a worker exports, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the metrics in `registry` (a new one by default)."""
        # A private registry lets several apps live in one test process.
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.events = Counter(
            "loyalty_events_total", "Input records by event type and outcome.",
            ["event_type", "outcome"], registry=reg)
        self.dlq_records = Counter(
            "loyalty_dlq_total", "Records sent to the dead-letter topic.",
            ["reason"], registry=reg)
        self.redelivered = Counter(
            "loyalty_redelivered_records_total",
            "Input records skipped because the partition's saved states already include them (redelivered "
            "from the committed offset after a restart or a rebalance).", registry=reg)
        self.points_moved = Counter(
            "loyalty_points_total", "Points moved by ledger kind (absolute).",
            ["kind"], registry=reg)
        self.points_outstanding = Gauge(
            "loyalty_points_outstanding",
            "Sum of points balances of the customers in owned partitions.",
            registry=reg)
        self.campaign_triggers = Counter(
            "loyalty_campaign_triggers_total", "Campaign triggers sent.",
            ["campaign"], registry=reg)
        self.status_transitions = Counter(
            "loyalty_status_transitions_total", "Activity status changes.",
            ["from", "to"], registry=reg)
        self.tier_transitions = Counter(
            "loyalty_tier_transitions_total", "Tier changes.",
            ["from", "to"], registry=reg)
        self.customers_by_status = Gauge(
            "loyalty_customers", "Customers in owned partitions by activity status.",
            ["status"], registry=reg)
        self.customers_by_tier = Gauge(
            "loyalty_customers_by_tier", "Customers in owned partitions by tier.",
            ["tier"], registry=reg)
        self.event_lag_seconds = Histogram(
            "loyalty_event_lag_seconds",
            "Wall time of processing minus the event's occurred_at, in seconds.",
            buckets=EVENT_LAG_BUCKETS_SECONDS, registry=reg)
        self.processing_seconds = Histogram(
            "loyalty_processing_seconds", "Time spent handling one record, in seconds.",
            buckets=PROCESSING_BUCKETS_SECONDS, registry=reg)
        self.consumer_lag = Gauge(
            "loyalty_consumer_lag", "Records behind the partition's high watermark.",
            ["partition"], registry=reg)
        self.partition_clock_seconds = Gauge(
            "loyalty_partition_clock_seconds",
            "Partition event-time clock as Unix seconds.",
            ["partition"], registry=reg)
        self.partition_end_offset = Gauge(
            "loyalty_partition_end_offset",
            "The input partition's end offset (high watermark) as last fetched: it moves as records arrive.",
            ["partition"], registry=reg)
        self.policy_info = Gauge(
            "loyalty_policy_info", "1 for the policy version each partition folds with.",
            ["partition", "version"], registry=reg)
        self._policy_versions: dict[int, str] = {}  # partition -> version published in policy_info
        self.refunds_unknown_order = Counter(
            "loyalty_refunds_unknown_order_total",
            "Refunds for orders the customer never paid; they change nothing.",
            registry=reg)
        self.redemptions_rejected = Counter(
            "loyalty_redemptions_rejected_total", "Redemptions rejected by reason.",
            ["reason"], registry=reg)
        self.customers_by_value = Gauge(
            "loyalty_customers_by_value", "Customers in owned partitions by value class.",
            ["value"], registry=reg)
        self.value_transitions = Counter(
            "loyalty_value_transitions_total", "Value class changes.",
            ["from", "to"], registry=reg)
        # Churn by segment: rate(...[7d]) over the customers of a tier or value class (deploy/prometheus/rules.yml).
        self.dormant_transitions = Counter(
            "loyalty_dormant_transitions_total",
            "Customers becoming dormant, by the tier and value class they had just before.",
            ["tier", "value"], registry=reg)
        self.reward_claims = Counter(
            "loyalty_reward_claims_total", "Reward claims: accepted, or the reason of the rejection.",
            ["outcome"], registry=reg)
        self.coupons = Counter(
            "loyalty_coupons_total", "Coupons issued, used and expired.",
            ["event"], registry=reg)
        self.coupons_rejected = Counter(
            "loyalty_coupon_uses_rejected_total", "Coupon uses rejected by reason.",
            ["reason"], registry=reg)
        self._partitions: set[int] = set()  # the partitions with per-partition series (prometheus_client lists none)
        # Every campaign and coupon series exists from the start, so /metrics and the dashboard show zeros.
        for name in CAMPAIGNS:
            self.campaign_triggers.labels(name)
        for event in ("issued", "used", "expired"):
            self.coupons.labels(event)

    def count_event(self, event_type: str, outcome: str, count: int = 1) -> None:
        """Count input records as applied, duplicate or rejected."""
        self.events.labels(event_type=event_type, outcome=outcome).inc(count)

    def count_ledger_points(self, kind: str, points: int) -> None:
        """Count the points a ledger entry moves, whatever its sign."""
        self.points_moved.labels(kind=kind).inc(abs(points))

    def count_coupon_record(self, kind: str, count: int = 1) -> None:
        """Count records of the coupons topic (an issued coupon is an accepted claim)."""
        event = kind.removeprefix("coupon_")
        self.coupons.labels(event).inc(count)
        if event == "issued":
            self.reward_claims.labels("accepted").inc(count)

    def count_rejection(self, kind: str, reason: str, count: int = 1) -> None:
        """Count rejected redemptions, claims or coupon uses by their reason."""
        if kind == "claim_rejected":
            self.reward_claims.labels(reason).inc(count)
        elif kind == "coupon_rejected":
            self.coupons_rejected.labels(reason).inc(count)
        else:
            self.redemptions_rejected.labels(reason).inc(count)

    def count_status_transition(self, from_status: str, to_status: str, count: int = 1) -> None:
        """Count activity status changes."""
        self.status_transitions.labels(from_status, to_status).inc(count)

    def count_tier_transition(self, from_tier: str, to_tier: str, count: int = 1) -> None:
        """Count tier changes."""
        self.tier_transitions.labels(from_tier, to_tier).inc(count)

    def set_partition_clock(self, partition: int, clock_seconds: float) -> None:
        """Publish a partition's event-time clock in Unix seconds."""
        self._partitions.add(partition)
        self.partition_clock_seconds.labels(partition=str(partition)).set(clock_seconds)

    def set_policy_version(self, partition: int, version: str) -> None:
        """Publish the version of the policy a partition folds with (one series per partition)."""
        old = self._policy_versions.get(partition)
        if old == version:
            return
        if old is not None:
            with contextlib.suppress(KeyError):
                self.policy_info.remove(str(partition), old)
        self._policy_versions[partition] = version
        self.policy_info.labels(str(partition), version).set(1)

    def set_consumer_lag(self, partition: int, lag_records: int) -> None:
        """Publish how many records a partition is behind."""
        self._partitions.add(partition)
        self.consumer_lag.labels(partition=str(partition)).set(lag_records)

    def set_partition_end_offset(self, partition: int, end_offset: int) -> None:
        """Publish the input partition's end offset (alerts compare its moves with the clock's)."""
        self._partitions.add(partition)
        self.partition_end_offset.labels(partition=str(partition)).set(end_offset)

    def forget_partition(self, partition: int) -> None:
        """Drop the per-partition series of a partition this worker no longer owns."""
        self._partitions.discard(partition)
        for gauge in (self.consumer_lag, self.partition_clock_seconds, self.partition_end_offset):
            # Older prometheus_client raises KeyError for an unknown label set.
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))
        old = self._policy_versions.pop(partition, None)
        if old is not None:
            with contextlib.suppress(KeyError):
                self.policy_info.remove(str(partition), old)

    def keep_partitions(self, partitions: Iterable[int]) -> None:
        """Drop the per-partition series of every partition but these (the ones assigned after a rebalance)."""
        for partition in self._partitions - set(partitions):
            self.forget_partition(partition)

    def render(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)


def _touch_every_series(metrics: LoyaltyMetrics) -> None:
    """Create one child per labelled metric so the text format lists its samples."""
    for metric in vars(metrics).values():
        # A labelled metric without children shows only HELP and TYPE lines.
        label_names = getattr(metric, "_labelnames", ())
        if label_names:
            metric.labels(*("x" for _ in label_names))


def _exported_metric_names() -> frozenset[str]:
    """Return every sample name a fresh instance exposes, suffixes included."""
    metrics = LoyaltyMetrics()
    _touch_every_series(metrics)
    text = metrics.render().decode()
    return frozenset(
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )


# Sample names as Prometheus scrapes them (`_total`, `_bucket`, `_sum`, `_count`,
# `_created`): what a PromQL expression may reference.
EXPORTED_METRIC_NAMES = _exported_metric_names()


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Observe a batch of values: one increment per bucket touched, not one `observe` per value.

    Same result as `histogram.observe(v)` for each v (a value goes to the first bucket whose upper
    bound is >= it); prometheus-client has no bulk call, so this reads its bucket list.
    """
    if not values:
        return
    counts = [0] * len(histogram._upper_bounds)
    for value in values:
        counts[bisect_left(histogram._upper_bounds, value)] += 1
    for bucket, count in zip(histogram._buckets, counts):
        if count:
            bucket.inc(count)
    histogram._sum.inc(sum(values))
