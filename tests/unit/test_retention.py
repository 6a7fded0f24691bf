"""Retention is a rule, not a side effect of housekeeping: pruning after every event or never gives the same
outcomes (an order is known while clock < paid_at + order_days, an id is a duplicate while
clock < occurred_at + event_id_days, a day's bonus count is kept for daily_counter_days)."""
from __future__ import annotations

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st
from pydantic import ValidationError

import projections.customer
from projections.effects import LedgerEntryMade, Outcome
from projections.partition import MemoryStore, PartitionFold
from projections.documents import customer_view
from schemas.policy import Policy
from tests.support.events import day, ev, tick
from tests.support.scenario import given
from tests.unit.test_properties import DETERMINISTIC, histories

LONG_IDS = Policy.model_validate({"retention": {"event_id_days": 400}})


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
    """Fold a log with pruning after every `prune_every_events` events; return the views and all effects.

    Event ids follow: forgotten as soon as they are past their window (1), or never (any other value).
    """
    monkeypatch.setattr(projections.customer, "_PRUNE_EVERY_EVENTS", prune_every_events)
    monkeypatch.setattr(projections.customer, "_EVENT_ID_SLACK_MS", 0 if prune_every_events == 1 else 10**15)
    store = MemoryStore()
    partition = PartitionFold(store)
    results = [partition.apply(event) for event in log]
    return {cid: customer_view(state) for cid, state in store.items()}, results


@DETERMINISTIC
@for_all(histories_with_old_redeliveries())
def test_pruning_after_every_event_and_never_give_the_same_states_and_outputs(log):
    with pytest.MonkeyPatch.context() as monkeypatch:  # hypothesis runs many examples per test call
        with_pruning = fold_pruning(log, 1, monkeypatch)
        never = fold_pruning(log, 10**9, monkeypatch)
    assert with_pruning == never


def test_an_event_id_is_a_duplicate_exactly_until_its_retention_ends():
    partition = PartitionFold(MemoryStore())
    adjust = ev("points.adjusted", day(0), id="adj-1", points=50, reason="ops")
    partition.apply(adjust)
    partition.apply(ev("clock.tick", day(6, 23), customer=None))
    assert partition.apply(adjust)[0] is Outcome.DUPLICATE          # 1 h before occurred_at + 7 days (the default)
    partition.apply(ev("clock.tick", day(7), customer=None))
    assert partition.apply(adjust)[0] is Outcome.APPLIED            # clock = occurred_at + 7 days: forgotten
    assert partition.store["c1"].points_balance == 100        # a producer's resend this late is applied again


def test_forgetting_old_event_ids_keeps_every_id_within_its_window():
    partition = PartitionFold(MemoryStore())
    first, second = (ev("points.adjusted", day(n), id=f"adj-{n}", points=10, reason="ops") for n in (0, 3))
    partition.apply(first)
    partition.apply(second)
    partition.apply(ev("customer.visited", day(9.5), id="visit"))  # day 0 is over 7 + 1 days back: ids go
    assert set(partition.store["c1"].seen_event_ids) == {"adj-3", "visit"}
    partition.apply(ev("clock.tick", day(9.9), customer=None))
    assert partition.apply(second)[0] is Outcome.DUPLICATE         # day 3 + 7 days is not reached yet
    assert partition.apply(first)[0] is Outcome.APPLIED


def test_a_longer_event_id_window_is_the_policys():
    partition = PartitionFold(MemoryStore(), LONG_IDS)
    adjust = ev("points.adjusted", day(0), id="adj-1", points=50, reason="ops")
    partition.apply(adjust)
    partition.apply(ev("clock.tick", day(399, 23), customer=None))
    assert partition.apply(adjust)[0] is Outcome.DUPLICATE          # 1 h before occurred_at + 400 days
    partition.apply(ev("clock.tick", day(400), customer=None))
    assert partition.apply(adjust)[0] is Outcome.APPLIED


def test_a_redemption_id_stays_a_duplicate_after_its_event_id_is_forgotten_until_redemption_id_days():
    s = given(ev("points.adjusted", day(0), points=1000, reason="seed"))
    first = ev("redemption.requested", day(1), id="red-1", redemption_id="r1", points=100)
    s.apply(first, tick(day(30)))
    s.when(first)                                             # the same event, resent 29 days later
    assert (s.outcomes, s.effects) == ([Outcome.APPLIED], [])       # its event id is forgotten, its redemption id is not
    s.then(points_balance=900)
    s.apply(ev("points.adjusted", day(400), points=1000, reason="seed"),
            ev("customer.visited", day(400)))             # the first lot expired at day 365
    assert s.when(ev("redemption.requested", day(400, 23), redemption_id="r1", points=100)).effects == []
    s.then(points_balance=1000)
    s.apply(tick(day(401)))                                   # redeemed at day 1: remembered until day 401
    assert s.when(ev("redemption.requested", day(401), redemption_id="r1", points=100)).points() == [-100]


def test_a_claim_id_stays_a_duplicate_after_its_event_id_is_forgotten_until_redemption_id_days():
    policy = Policy.model_validate({"rewards": {"mug": {"points": 100, "coupon_value": "20.00", "valid_days": 30}}})
    first = ev("reward.claimed", day(1), id="claim-1", claim_id="k1", reward_id="mug")
    s = given(policy=policy).when(first)
    assert [u["reason"] for u in s.updates(kind="claim_rejected")] == ["insufficient_points"]
    s.apply(ev("points.adjusted", day(2), points=500, reason="seed"), tick(day(100)))
    s.when(first)                                             # resent 99 days later, now with the points
    assert (s.outcomes, s.effects) == ([Outcome.APPLIED], [])       # a rejected claim id stays used
    s.apply(ev("points.adjusted", day(400), points=500, reason="seed"),
            ev("customer.visited", day(400)))             # the first lot expired at day 367
    assert s.when(ev("reward.claimed", day(400, 23), claim_id="k1", reward_id="mug")).effects == []
    s.apply(tick(day(401)))                                   # claimed at day 1: remembered until day 401
    assert s.when(ev("reward.claimed", day(401), claim_id="k1", reward_id="mug")).points() == [-100]


def test_a_quiet_customers_old_event_ids_are_forgotten_when_time_moves_its_state_on():
    partition = PartitionFold(MemoryStore())
    for n in range(3):
        partition.apply(ev("customer.visited", day(n)))
    partition.apply(ev("clock.tick", day(200), customer=None))  # dormant at day 182: the state is rewritten
    assert partition.store["c1"].status == "dormant" and partition.store["c1"].seen_event_ids == {}


def test_a_very_active_customer_keeps_about_event_id_days_of_event_ids():
    partition = PartitionFold(MemoryStore())
    for n in range(100 * 10):                                 # ten visits a day for 100 days
        partition.apply(ev("customer.visited", day(n / 10)))
    # Forgotten in bulk once the oldest is a day past its window: at most 7 + 1 days of ids, never 100.
    assert 70 <= len(partition.store["c1"].seen_event_ids) <= 80


@pytest.mark.parametrize("retention", [{"redemption_id_days": 0}, {"event_id_days": 0},
                                       {"event_id_days": 30, "redemption_id_days": 20}])
def test_an_id_window_must_be_a_day_or_more_and_money_ids_outlive_event_ids(retention):
    with pytest.raises(ValidationError):
        Policy.model_validate({"retention": retention})


def test_the_id_windows_default_to_seven_and_400_days():
    assert (Policy().retention.event_id_days, Policy().retention.redemption_id_days) == (7, 400)


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
        return sum(e.points for e in effects if isinstance(e, LedgerEntryMade) and e.kind == "bonus")

    assert bonus("2026-01-05T23:59:59+08:00") == 0   # a day no longer counted: no bonus
    assert bonus("2026-01-06T00:00:00+08:00") > 0    # the first counted day
    assert bonus("2026-01-08T12:00:00+08:00") > 0    # well inside (the check without time zones)
