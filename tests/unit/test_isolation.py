"""A fold that raises loses nothing and stops nothing: the event goes to the DLQ as processing_error, the
partition is folded as if it were absent, in the worker's batch step and in replay alike."""
from __future__ import annotations

import orjson
import pytest

from projections.customer import DEFAULT_POLICY
from projections.partition import PartitionFold, SavedStateStore
import projections.partition
from projections.documents import Totals
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Pipeline, Record
from tests.support.events import event_line as raw
from tests.support.folds import FoldsFrom
from tests.support.promtext import samples, value
from tools.replay import LogRecord, fold_log


PAID_C1 = raw("e1", "order.paid", "c1", "2026-01-01T00:00:00Z", order_id="o1", amount="100.00")
HUGE_ADJUST_C1 = raw("e2", "points.adjusted", "c1", "2026-01-02T00:00:00Z", points=5000, reason="goodwill")
CHECKIN_C1 = raw("e3", "customer.checked_in", "c1", "2026-01-03T00:00:00Z")
PAID_C2 = raw("e4", "order.paid", "c2", "2026-01-04T00:00:00Z", order_id="o2", amount="20.00")
NEW_CUSTOMER_HUGE = raw("e5", "points.adjusted", "c3", "2026-01-05T00:00:00Z", points=5000, reason="goodwill")


@pytest.fixture(autouse=True)
def low_balance_limit(monkeypatch):
    """Make an ordinary adjustment overflow the balance guard, so the fold raises on a valid event."""
    monkeypatch.setattr(projections.partition, "BALANCE_LIMIT", 1000)


def make_pipeline() -> tuple[Pipeline, LoyaltyMetrics, dict[int, SavedStateStore]]:
    metrics, stores = LoyaltyMetrics(), {}

    def open_fold(partition: int) -> PartitionFold:
        stores[partition] = SavedStateStore()
        return PartitionFold(stores[partition], DEFAULT_POLICY)
    return Pipeline(DEFAULT_POLICY, metrics, FoldsFrom(open_fold), wall_clock_s=lambda: 1_800_000_000.0), metrics, stores


def by_topic(out) -> dict[str, list[dict]]:
    topics: dict[str, list[dict]] = {}
    for message in out:
        topics.setdefault(message.topic, []).append(orjson.loads(message.value))
    return topics


def test_a_fold_that_raises_sends_the_event_to_the_dlq_and_the_batch_goes_on_as_if_it_were_absent():
    pipeline, metrics, stores = make_pipeline()
    out = pipeline.process([Record(0, 10, b"c1", PAID_C1), Record(0, 11, b"c1", HUGE_ADJUST_C1),
                            Record(0, 12, b"c1", CHECKIN_C1), Record(0, 13, b"c2", PAID_C2)])
    topics = by_topic(out)
    [dlq] = topics["customer-events-dlq"]
    assert dlq["reason"] == "processing_error" and dlq["exception"] == "OverflowError"
    assert dlq["error"].startswith("processing_error: OverflowError: the points balance")
    assert dlq["source"] == {"topic": "customer-events", "partition": 0, "offset": 11}
    assert orjson.loads(dlq["raw"]) == orjson.loads(HUGE_ADJUST_C1)
    # c1: 100 earned + 5 for the check-in, numbered without a gap; c2: 20 earned. Nothing twice.
    assert [(e["entry_id"], e["points"], e["balance_after"]) for e in topics["loyalty-ledger"]] == [
        ("c1:1", 100, 100), ("c1:2", 5, 105), ("c2:1", 20, 20)]
    fold = pipeline.folds[0]
    c1 = fold.store.get("c1")
    assert c1.points_balance == 105 and c1.events_applied == 2 and "e2" not in c1.seen_event_ids
    assert fold.totals.to_dict() == Totals.of([c1, fold.store.get("c2")]).to_dict()
    text = samples(metrics.render().decode())
    assert value(text, "loyalty_dlq_total", reason="processing_error") == 1
    assert value(text, "loyalty_events_total", event_type="order.paid", outcome="applied") == 2
    assert value(text, "loyalty_events_total", event_type="customer.checked_in", outcome="applied") == 1
    assert value(text, "loyalty_points_total", kind="earn") == 120
    assert value(text, "loyalty_points_outstanding") == 125


def test_rollback_returns_to_the_saved_state_of_the_previous_batch_and_forgets_a_new_customer():
    pipeline, _, stores = make_pipeline()
    pipeline.process([Record(0, 0, b"c1", PAID_C1)])
    stores[0].save()   # what the worker does once the broker has the batch
    fold = pipeline.folds[0]
    clock_before, due_before = fold.clock_ms, len(fold.due)
    out = pipeline.process([Record(0, 1, b"c1", HUGE_ADJUST_C1), Record(0, 2, b"c3", NEW_CUSTOMER_HUGE)])
    assert [m.topic for m in out] == ["customer-events-dlq", "customer-events-dlq"]
    assert fold.store.get("c1").points_balance == 100 and fold.store.get("c3") is None
    assert fold.clock_ms == clock_before and len(fold.due) == due_before
    assert fold.totals.customers == 1 and fold.segment("potential", None) | fold.segment("active", None) == {"c1"}


def test_replay_refuses_the_same_event_and_derives_the_same_outputs_and_states():
    records = [(10, PAID_C1, b"c1"), (11, HUGE_ADJUST_C1, b"c1"), (12, CHECKIN_C1, b"c1"), (13, PAID_C2, b"c2")]
    pipeline, _, _ = make_pipeline()
    out = pipeline.process([Record(0, offset, key, value) for offset, value, key in records])
    log = [LogRecord(0, offset, None, key, value) for offset, value, key in records]
    reads = []

    def read(partitions):
        reads.append(partitions)
        return [r for r in log if partitions is None or r.partition in partitions]
    result = fold_log(read, DEFAULT_POLICY, outputs=True)
    assert reads == [None, {0}], "the partition is folded again without the poisoned record"
    assert result.poisoned == {0: {11}} and result.rejected == 1 and result.records == 4
    live = pipeline.folds[0].store
    assert {cid: s.to_dict() for cid, s in result.states.items()} == {
        cid: live.get(cid).to_dict() for cid in ("c1", "c2")}
    ledger = {orjson.loads(m.value)["entry_id"] for m in out if m.topic == "loyalty-ledger"}
    assert set(result.outputs["loyalty-ledger"]) == ledger
