"""docs/rules.md, lots and expiry: credits repay debt, lots expire after 365 days, oldest first."""
from __future__ import annotations

from projections.points import points_expiring
from tests.support.events import day, ev, paid, tick
from tests.support.scenario import given


def test_a_credit_becomes_a_lot_expiring_365_days_after_its_occurred_at():
    s = given(paid("o1", "100"))
    assert points_expiring(s.state()) == [{"points": 100, "expires_at": "2027-01-01T02:00:00Z"}]


def test_a_lot_is_still_held_just_before_365_days():
    s = given(paid("o1", "100")).when(tick(day(365, hours=-1 / 3600)))
    assert s.ledger() == []
    s.then(points_balance=100)


def test_a_lot_expires_at_365_days_with_an_expire_entry():
    clock = tick(day(365))
    s = given(paid("o1", "100")).when(clock)
    assert s.ledger() == [{
        "entry_id": "c1:2", "customer_id": "c1", "occurred_at": "2027-01-01T02:00:00Z", "kind": "expire",
        "points": -100, "balance_after": 0, "source_event_id": clock.event_id,
    }]
    s.then(points_balance=0, lots=[])


def test_expiry_is_reported_at_the_lots_expiry_time_even_when_the_clock_arrives_later():
    s = given(paid("o1", "100")).when(tick(day(400)))
    assert [(r["kind"], r["points"], r["occurred_at"]) for r in s.ledger()] == [
        ("expire", -100, "2027-01-01T02:00:00Z")]


def test_only_the_remainder_of_a_lot_expires():
    s = given(paid("o1", "100"), ev("redemption.requested", day(10), redemption_id="r1", points=30))
    assert s.when(tick(day(365))).points(kind="expire") == [-70]
    s.then(points_balance=0)


def test_each_lot_expires_on_its_own_date():
    s = given(paid("o1", "100"), paid("o2", "50", day(100)))
    assert s.when(tick(day(365))).points() == [-100]
    s.then(points_balance=50)
    assert s.when(tick(day(465))).points() == [-50]
    s.then(points_balance=0)


def test_redemption_consumes_the_oldest_lot_first():
    s = given(paid("o1", "100"), paid("o2", "50", day(100)),
              ev("redemption.requested", day(200), redemption_id="r1", points=120))
    assert points_expiring(s.state()) == [{"points": 30, "expires_at": "2027-04-11T02:00:00Z"}]
    assert s.when(tick(day(365))).ledger() == []
    assert s.when(tick(day(465))).points() == [-30]


def test_reversal_consumes_the_oldest_lot_first():
    s = given(paid("o1", "100"), paid("o2", "50", day(100)),
              ev("order.refunded", day(200), order_id="o2", amount="50"))
    s.then(points_balance=100)
    assert s.when(tick(day(365))).points() == [-50]  # not -100: the reversal took from the first lot
    assert s.when(tick(day(465))).points() == [-50]


def test_negative_adjustment_consumes_the_oldest_lot_first():
    s = given(paid("o1", "100"), paid("o2", "50", day(100)), ev("points.adjusted", day(200), points=-60, reason="x"))
    assert s.when(tick(day(365))).points() == [-40]


def test_a_credit_repays_debt_before_it_becomes_a_lot():
    s = given(ev("points.adjusted", day(0), points=-30, reason="clawback")).then(points_balance=-30, debt_points=30)
    s.when(paid("o1", "100", day(1)))
    assert [(r["kind"], r["points"], r["balance_after"]) for r in s.ledger()] == [("earn", 100, 70)]
    s.then(points_balance=70, debt_points=0)
    assert points_expiring(s.state())[0]["points"] == 70
    assert s.when(tick(day(366))).points() == [-70]


def test_a_credit_smaller_than_the_debt_leaves_no_lot():
    s = given(ev("points.adjusted", points=-30, reason="clawback")).when(ev("customer.checked_in", day(1)))
    s.then(points_balance=-25, debt_points=25, lots=[])


def test_bonus_points_are_lots_too():
    s = given(ev("customer.checked_in", day(0)))
    assert s.when(tick(day(365))).points(kind="expire") == [-5]


def test_a_late_credit_that_is_already_past_its_expiry_expires_at_once():
    s = given(tick(day(400))).when(paid("o1", "100", day(0)))
    assert [(r["kind"], r["points"]) for r in s.ledger()] == [("earn", 100), ("expire", -100)]
    s.then(points_balance=0, lots=[])


def test_a_late_credit_expires_365_days_after_its_own_time_not_the_clock():
    s = given(tick(day(100))).when(paid("o1", "100", day(10)))
    assert points_expiring(s.state())[0]["expires_at"] == "2027-01-11T02:00:00Z"
    assert s.when(tick(day(375))).points() == [-100]


def test_expiry_honours_a_policy_override():
    from schemas.policy import LotsPolicy, Policy
    s = given(paid("o1", "100"), policy=Policy(lots=LotsPolicy(expiry_days=30)))
    assert s.when(tick(day(30))).points() == [-100]
