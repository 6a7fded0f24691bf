"""docs/events.md (events and time): duplicates change nothing, late events are applied, all rules use event time."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from projections.effects import CampaignTriggered, Outcome, Output
from projections.customer import pass_time, evolve
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from tests.support.events import day, ev, tick
from tests.support.scenario import Scenario, given

# Half a day apart: the whole history is within the default event_id_days (7) of its end.
HISTORY = [
    ev("customer.registered", day(0), birthday="1990-12-01"),
    ev("order.paid", day(0.5), order_id="o1", amount="300.00"),
    ev("customer.checked_in", day(1)),
    ev("review.posted", day(1.5), order_id="o1", rating=5),
    ev("redemption.requested", day(2), redemption_id="r1", points=50),
    ev("order.refunded", day(2.5), order_id="o1", amount="100.00"),
    ev("points.adjusted", day(3), points=-500, reason="clawback"),
    ev("content.shared", day(3.5)),
]


@pytest.mark.parametrize("index", range(len(HISTORY)), ids=lambda i: HISTORY[i].event_type)
def test_a_repeated_event_id_changes_nothing_and_emits_nothing(index):
    s = given(*HISTORY)
    before = s.state().to_dict()
    s.when(HISTORY[index])
    assert s.outcomes == [Outcome.DUPLICATE]
    assert s.effects == []
    assert s.state().to_dict() == before


def test_a_repeated_event_id_with_a_different_body_is_still_a_duplicate():
    s = given(ev("order.paid", day(0), id="e-dup", order_id="o1", amount="10"))
    s.when(ev("order.paid", day(1), id="e-dup", order_id="o2", amount="99"))
    assert (s.outcomes, s.effects) == ([Outcome.DUPLICATE], [])
    s.then(points_balance=10, events_applied=1)


def test_event_ids_are_per_customer():
    s = given(ev("customer.checked_in", day(0), id="same", customer="c1"))
    assert s.when(ev("customer.checked_in", day(0), id="same", customer="c2")).outcomes == [Outcome.APPLIED]


def test_evolve_returns_the_same_state_for_a_duplicate():
    s = given(*HISTORY)
    state = s.state()
    assert evolve(state, HISTORY[1], s.fold.clock_ms) == (state, [])


def test_a_repeated_order_id_under_a_new_event_id_earns_nothing_and_adds_no_spend():
    s = given(ev("order.paid", day(0), order_id="o1", amount="100"))
    s.when(ev("order.paid", day(1), order_id="o1", amount="100"))
    assert (s.outcomes, s.ledger()) == ([Outcome.APPLIED], [])
    s.then(points_balance=100, lifetime_spend_minor=10_000, window_spend_minor=10_000, events_applied=2)


def test_events_applied_counts_new_customer_events_only():
    s = given(*HISTORY, tick(day(6)), HISTORY[0], tick(day(9)))  # HISTORY[0] again within its 7 days
    s.then(events_applied=len(HISTORY))


def test_a_late_event_is_applied():
    s = given(ev("customer.visited", day(100))).when(ev("order.paid", day(50), order_id="o1", amount="80"))
    assert s.points(kind="earn") == [80]
    s.then(lifetime_spend_minor=8_000)


def test_a_late_event_does_not_move_the_clock_back():
    s = given(tick(day(100))).when(ev("customer.visited", day(50)))
    assert s.fold.clock_ms == s.state().as_of_ms
    assert s.state().last_interaction_ms < s.fold.clock_ms


def test_a_late_check_in_earns_on_its_own_local_day():
    s = given(ev("customer.checked_in", day(5)))
    assert s.when(ev("customer.checked_in", day(4))).points() == [5]
    assert s.when(ev("customer.checked_in", day(4, hours=2))).points() == []


def test_a_late_interaction_does_not_set_the_last_interaction_back():
    recent = ev("customer.visited", day(100))
    s = given(recent).when(ev("customer.visited", day(50)))
    s.then(last_interaction_ms=recent.occurred_at_ms)


def _customer_events():
    return [
        ev("customer.registered", day(0)),
        ev("order.paid", day(1), order_id="o1", amount="700"),
        ev("customer.checked_in", day(40)),
        ev("order.paid", day(100), order_id="o2", amount="400"),
        ev("order.refunded", day(120), order_id="o2", amount="50"),
        ev("redemption.requested", day(200), redemption_id="r1", points=300),
        ev("content.shared", day(390)),
        ev("order.paid", day(420), order_id="o3", amount="20"),
    ]


def test_ticks_between_events_do_not_change_the_outcome():
    events = _customer_events()
    ticking, quiet = Scenario(), Scenario()
    for event in events:
        at = event.occurred_at_ms
        ticking.apply(*[tick(day(n)) for n in range(0, 430, 7) if tick(day(n)).occurred_at_ms < at][-3:], event)
        quiet.apply(event)
    end = tick(day(800))
    ticking.apply(end)
    quiet.apply(end)
    assert ticking.state().to_dict() == quiet.state().to_dict()

    def facts(s):
        return [(type(e), {k: v for k, v in e.record.items() if k != "source_event_id"}) if isinstance(e, Output)
                else replace(e, source_event_id=None) for e in s.history]
    assert facts(ticking) == facts(quiet)


def test_evolve_does_not_mutate_its_input_state():
    s = given(*HISTORY)
    state = s.state()
    before = copy.deepcopy(state.to_dict())
    evolve(state, ev("order.paid", day(9), order_id="o9", amount="2000"), s.fold.clock_ms)
    evolve(state, ev("points.adjusted", day(9), points=-5000, reason="x"), s.fold.clock_ms)
    pass_time(state, tick(day(900)).occurred_at_ms)
    assert state.to_dict() == before


def test_pruning_keeps_every_event_id_and_order_within_the_retention_window():
    first_order = ev("order.paid", day(0), order_id="o1", amount="100")
    visits = [ev("customer.visited", day(n)) for n in range(1, 70)]  # orders are pruned at every 32nd event
    long_memory = Policy.model_validate({"retention": {"event_id_days": 400}})
    s = given(first_order, *visits, tick(day(390)), policy=long_memory)
    assert s.when(first_order).outcomes == [Outcome.DUPLICATE]
    assert s.when(ev("order.paid", day(390), order_id="o1", amount="100")).ledger() == []
    assert s.when(visits[0], visits[-1]).outcomes == [Outcome.DUPLICATE, Outcome.DUPLICATE]


def test_a_new_customer_whose_first_event_is_late_starts_at_the_clock_with_the_event_applied():
    # The partition clock is at day 200 (another customer); c9's first event is an order from day 0.
    fold = PartitionFold(MemoryStore())
    fold.apply(ev("customer.visited", day(200), customer="other"))
    _, effects = fold.apply(ev("order.paid", day(0), customer="c9", order_id="o1", amount="100.00"))
    state = fold.store["c9"]
    assert state.points_balance == 100 and state.status == "dormant"  # 200 days >= 180 without interaction
    [win_back] = [e.record for e in effects if isinstance(e, CampaignTriggered)]
    assert win_back["points_balance"] == 100 and win_back["details"]["last_interaction_at"] is not None
