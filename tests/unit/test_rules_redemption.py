"""docs/rules.md, redemption: accepted within the balance, else rejected; ids are deduplicated."""
from __future__ import annotations

import pytest

from projections.effects import Outcome
from tests.support.events import day, ev
from tests.support.scenario import given


def redeem(redemption_id: str, points: int, at: str = day(1), **kw):
    return ev("redemption.requested", at, redemption_id=redemption_id, points=points, **kw)


def funded(points: int = 100):
    return given(ev("points.adjusted", day(0), points=points, reason="seed"))


@pytest.mark.parametrize("points", [1, 99, 100])
def test_redemption_up_to_the_balance_is_accepted(points):
    event = redeem("r1", points, reward="mug")
    s = funded(100).when(event)
    assert s.ledger() == [{
        "entry_id": "c1:2", "customer_id": "c1", "occurred_at": "2026-01-02T02:00:00Z", "kind": "redeem",
        "points": -points, "balance_after": 100 - points, "source_event_id": event.event_id,
    }]
    s.then(points_balance=100 - points)


def test_redemption_above_the_balance_is_rejected_for_insufficient_points():
    event = redeem("r1", 101)
    s = funded(100).when(event)
    assert s.effects and s.ledger() == []
    assert s.updates() == [{
        "customer_id": "c1", "kind": "redemption_rejected", "reason": "insufficient_points",
        "redemption_id": "r1", "points": 101, "at": "2026-01-02T02:00:00Z", "source_event_id": event.event_id,
    }]
    s.then(points_balance=100)


def test_redemption_is_rejected_while_in_debt():
    s = given(ev("points.adjusted", points=-5, reason="x")).when(redeem("r1", 1))
    assert s.updates(kind="redemption_rejected")


def test_a_repeated_redemption_id_changes_nothing_but_is_counted_as_applied():
    s = funded(100)
    s.apply(redeem("r1", 30))
    before = s.state().to_dict()
    s.when(redeem("r1", 30, day(2)))
    assert s.effects == []
    assert s.outcomes == [Outcome.APPLIED]
    after = s.state().to_dict()
    assert after["events_applied"] == before["events_applied"] + 1
    assert after["points_balance"] == before["points_balance"] == 70
    assert after["lots"] == before["lots"]


def test_a_rejected_redemption_id_stays_used():
    s = given(redeem("r1", 50, day(0)), ev("points.adjusted", day(1), points=100, reason="seed"))
    assert s.when(redeem("r1", 50, day(2))).effects == []
    s.then(points_balance=100)


def test_a_redemption_is_an_interaction():
    s = funded(100).when(redeem("r1", 10, day(40)))
    assert s.state().last_interaction_ms == s.state().seen_event_ids[s.ledger()[0]["source_event_id"]]
