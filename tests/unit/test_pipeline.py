"""The worker's batch step without Kafka: validation to the DLQ, outputs by partition, metrics."""
from __future__ import annotations

import base64

import orjson
import pytest

from projections.customer import DEFAULT_POLICY
from projections.partition import MemoryStore, PartitionFold
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Pipeline, Record
from tests.support.events import event_line as event
from tests.support.folds import FoldsFrom
from tests.support.promtext import samples, value


def make_pipeline(clock: str = "wall") -> tuple[Pipeline, LoyaltyMetrics]:
    metrics = LoyaltyMetrics()
    return Pipeline(DEFAULT_POLICY, metrics, FoldsFrom(lambda p: PartitionFold(MemoryStore(), DEFAULT_POLICY)),
                    wall_clock_s=lambda: 1_800_000_000.0, clock=clock), metrics


def test_good_events_become_outputs_on_their_partition_and_bad_ones_dlq_records():
    pipeline, metrics = make_pipeline()
    paid = event("e1", "order.paid", "c1", "2026-01-01T00:00:00Z", order_id="o1", amount="10.00")
    out = pipeline.process([
        Record(2, 7, b"c1", paid),
        Record(2, 8, b"c1", paid),                         # the same event again
        Record(3, 9, None, b"\xff\xfe not utf-8"),
        Record(1, 4, b"other", paid),                       # key differs from customer_id
    ])
    ledger = [o for o in out if o.topic == "loyalty-ledger"]
    assert [(o.partition, o.key, orjson.loads(o.value)["points"]) for o in ledger] == [(2, b"c1", 10)]
    dlq = {o.partition: orjson.loads(o.value) for o in out if o.topic == "customer-events-dlq"}
    assert dlq[3]["reason"] == "invalid_json" and dlq[3]["raw_encoding"] == "base64"
    assert base64.b64decode(dlq[3]["raw"]) == b"\xff\xfe not utf-8"
    assert dlq[3]["source"] == {"topic": "customer-events", "partition": 3, "offset": 9}
    assert dlq[1]["reason"] == "key_mismatch" and dlq[1]["key"] == "other" and dlq[1]["raw"] == paid.decode()
    text = samples(metrics.render().decode())
    assert value(text, "loyalty_events_total", event_type="order.paid", outcome="applied") == 1
    assert value(text, "loyalty_events_total", event_type="order.paid", outcome="duplicate") == 1
    assert value(text, "loyalty_dlq_total", reason="invalid_json") == 1
    assert value(text, "loyalty_points_total", kind="earn") == 10
    assert value(text, "loyalty_points_outstanding") == 10
    assert pipeline.positions == {2: 9, 3: 10, 1: 5}


def test_ticks_move_only_their_partition_and_count_no_event():
    pipeline, metrics = make_pipeline()
    tick = orjson.dumps({"event_id": "t", "event_type": "clock.tick", "customer_id": None,
                         "occurred_at": "2026-02-01T00:00:00Z"})
    pipeline.process([Record(0, 0, None, tick)])
    assert pipeline.folds[0].clock_ms > 0 and 1 not in pipeline.folds
    assert pipeline.totals().events_applied == 0
    text = samples(metrics.render().decode())
    assert value(text, "loyalty_partition_clock_seconds", partition="0") == pipeline.folds[0].clock_ms / 1000


@pytest.mark.parametrize("clock, advice, not_advice", [
    ("wall", "--clock event", "time order"),
    ("event", "time order", "--clock event"),  # already on --clock event: that advice would be no help
])
def test_events_far_behind_the_partition_clock_are_reported_once_per_partition(caplog, clock, advice, not_advice):
    pipeline, _ = make_pipeline(clock)
    late = [Record(0, n, b"c1", event(f"old{n}", "customer.visited", "c1", "2026-01-01T00:00:00Z")) for n in (1, 2)]
    pipeline.process([Record(0, 0, b"c1", event("new", "customer.visited", "c1", "2026-03-01T00:00:00Z"))])
    with caplog.at_level("WARNING", logger="loyalty"):
        pipeline.process(late[:1])
        pipeline.process(late[1:])
    warnings = [r for r in caplog.records if "far behind the partition clock" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].fields["partition"] == 0
    assert warnings[0].fields["event_time"] == "2026-01-01T00:00:00Z"
    assert advice in warnings[0].getMessage() and not_advice not in warnings[0].getMessage()


def test_one_batch_in_time_order_spanning_months_is_not_far_behind(caplog):
    """A worker catching up folds months of history in one fetch: each event is ahead of the clock it meets."""
    pipeline, _ = make_pipeline()
    months = [Record(0, n, b"c1", event(f"e{n}", "customer.visited", "c1", f"2026-{n + 1:02d}-01T00:00:00Z"))
              for n in range(6)]
    with caplog.at_level("WARNING", logger="loyalty"):
        pipeline.process(months)
    assert not [r for r in caplog.records if "far behind the partition clock" in r.getMessage()]


def test_records_redelivered_below_the_folded_offset_are_skipped_even_past_the_event_id_memory():
    """After a crash or a rebalance, Kafka redelivers from the committed offset, which lags the states.

    In a backfill the clock may be far past `event_id_days` after the first events by then: their ids
    are forgotten, so only the offset (saved with the states) keeps them from being applied again.
    """
    pipeline, metrics = make_pipeline()
    early = Record(0, 0, b"c1", event("e0", "order.paid", "c1", "2025-01-01T00:00:00Z", order_id="o1", amount="10.00"))
    late = Record(0, 1, b"c1", event("e1", "customer.visited", "c1", "2026-06-01T00:00:00Z"))
    assert pipeline.process([early, late])  # a ledger entry for the order
    assert pipeline.folded_until[0] == 2
    assert pipeline.process([early, late]) == []  # the same records again (Faust sought back to the commit)
    assert pipeline.totals().events_applied == 2
    fresh = Record(0, 2, b"c1", event("e2", "customer.visited", "c1", "2026-06-02T00:00:00Z"))
    pipeline.process([late, fresh])
    assert pipeline.totals().events_applied == 3 and pipeline.folded_until[0] == 3
    text = samples(metrics.render().decode())
    assert value(text, "loyalty_redelivered_records_total") == 3  # early and late again, then late once more
    assert not [labels for name, labels in text if name == "loyalty_events_total" and ("outcome", "duplicate") in labels]


def test_a_partition_loaded_from_its_store_skips_what_the_store_has_folded():
    pipeline = Pipeline(DEFAULT_POLICY, LoyaltyMetrics(), FoldsFrom(  # 5: read from the saved clock record
        lambda p: PartitionFold(MemoryStore(), DEFAULT_POLICY), folded_until={0: 5}))
    records = [Record(0, n, b"c1", event(f"e{n}", "customer.visited", "c1", f"2026-01-0{n + 1}T00:00:00Z"))
               for n in range(7)]
    pipeline.process(records)
    assert pipeline.totals().events_applied == 2 and pipeline.positions[0] == 7


def test_observing_a_batch_at_once_gives_the_same_histogram_as_one_value_at_a_time():
    from prometheus_client import CollectorRegistry, Histogram

    from streams.metrics import observe_many

    values = [0.0, 0.001, 0.0025, 0.005, 0.3, 1.0, 7.5, 1e9, 0.005]  # on bounds, between, past the last
    one_by_one, batched = (Histogram(name, "h", buckets=(0.001, 0.005, 1.0, 10.0), registry=CollectorRegistry())
                           for name in ("h1", "h2"))
    for value in values:
        one_by_one.observe(value)
    observe_many(batched, values)
    observe_many(batched, [])
    samples = [[(s.name[2:], s.labels, s.value) for s in h.collect()[0].samples if not s.name.endswith("_created")]
               for h in (one_by_one, batched)]
    assert samples[0] == samples[1]


def test_a_revoked_partition_keeps_its_clock_gauge_and_a_reloaded_one_shows_its_clock_at_once():
    """A rebalance revokes every partition and assigns most again: their clocks must not vanish meanwhile."""
    saved = {0: MemoryStore()}
    pipeline = Pipeline(DEFAULT_POLICY, LoyaltyMetrics(), FoldsFrom(lambda p: PartitionFold(
        saved[p], DEFAULT_POLICY, clock_ms=1_767_225_600_000)))
    pipeline.forget(0)
    assert 0 not in pipeline.folds
    pipeline.fold(0)  # reloaded after recovery, before any record
    text = samples(pipeline.metrics.render().decode())
    assert value(text, "loyalty_partition_clock_seconds", partition="0") == 1_767_225_600
    pipeline.process([Record(0, 0, b"c1", event("e1", "customer.visited", "c1", "2026-01-02T00:00:00Z"))])
    pipeline.forget(0)
    text = samples(pipeline.metrics.render().decode())
    assert value(text, "loyalty_partition_clock_seconds", partition="0") == 1_767_312_000
