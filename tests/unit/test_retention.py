"""Retention is a rule, not a side effect of housekeeping: pruning after every event or never gives the same
outcomes (an order is known while clock < paid_at + order_days, an id is a duplicate while
clock < occurred_at + event_id_days, a day's bonus count is kept for daily_counter_days)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import projections.customer
from projections.partition import MemoryStore, PartitionFold
from projections.views import customer_view
from tests.support.events import day, ev
from tests.unit.test_properties import DETERMINISTIC, histories


@st.composite
def histories_with_old_redeliveries(draw):
    """A history in which some records come again much later, also after their retention has passed."""
    log = draw(histories())
    for _ in range(draw(st.integers(0, 6))):
        if len(log) < 2:
            break
        original = draw(st.integers(0, len(log) - 2))
        log.insert(draw(st.integers(original + 1, len(log))), log[original])
    return log


def fold_pruning(log, prune_every_events: int, monkeypatch) -> tuple[dict, list]:
    """Fold a log with pruning after every `prune_every_events` events; return the views and all effects."""
    monkeypatch.setattr(projections.customer, "_PRUNE_EVERY_EVENTS", prune_every_events)
    store = MemoryStore()
    partition = PartitionFold(store)
    results = [partition.apply(event) for event in log]
    return {cid: customer_view(state) for cid, state in store.items()}, results


@DETERMINISTIC
@given(histories_with_old_redeliveries())
def test_pruning_after_every_event_and_never_give_the_same_states_and_outputs(log):
    with pytest.MonkeyPatch.context() as monkeypatch:  # hypothesis runs many examples per test call
        with_pruning = fold_pruning(log, 1, monkeypatch)
        never = fold_pruning(log, 10**9, monkeypatch)
    assert with_pruning == never


def test_an_event_id_is_a_duplicate_exactly_until_its_retention_ends():
    partition = PartitionFold(MemoryStore())
    adjust = ev("points.adjusted", day(0), id="adj-1", points=50, reason="ops")
    partition.apply(adjust)
    partition.apply(ev("clock.tick", day(399, 23), customer=None))
    assert partition.apply(adjust)[0] == "duplicate"          # 1 h before occurred_at + 400 days
    partition.apply(ev("clock.tick", day(400), customer=None))
    assert partition.apply(adjust)[0] == "applied"            # clock = occurred_at + 400 days: forgotten


def test_a_refund_is_honoured_exactly_while_its_order_is_known():
    partition = PartitionFold(MemoryStore())
    partition.apply(ev("order.paid", day(0), order_id="o1", amount="100.00"))
    partition.apply(ev("order.refunded", day(399, 23), order_id="o1", amount="10.00"))
    partition.apply(ev("order.refunded", day(400), order_id="o1", amount="10.00"))   # paid_at + 400 days
    # The first refund is honoured (10.00 of 100.00), the second finds no known order: spend 100 - 10.
    assert partition.store["c1"].lifetime_spend_minor == 9000


def test_a_late_check_in_earns_exactly_while_its_local_day_is_counted():
    partition = PartitionFold(MemoryStore())
    partition.apply(ev("customer.registered", day(0)))
    partition.apply(ev("clock.tick", day(45), customer=None))  # 15 Feb 10:00 local: 6 Jan is the first counted day

    def bonus(at: str) -> int:
        _, effects = partition.apply(ev("customer.checked_in", at))
        return sum(e.record["points"] for e in effects if e.kind == "ledger" and e.record["kind"] == "bonus")

    assert bonus("2026-01-05T23:59:59+08:00") == 0   # a day no longer counted: no bonus
    assert bonus("2026-01-06T00:00:00+08:00") > 0    # the first counted day
    assert bonus("2026-01-08T12:00:00+08:00") > 0    # well inside (the check without time zones)
