"""docs/rules.md, refund: cumulative floor reversals, capped, unknown orders, debt."""
from __future__ import annotations

from projections.effects import RefundOfUnknownOrder
from tests.support.events import day, ev, paid, refund
from tests.support.scenario import given


def test_partial_refund_reverses_floor_of_earned_times_refunded_over_paid():
    s = given(paid("o1", "100.00")).when(refund("o1", "33.33"))
    assert [(r["kind"], r["points"], r["balance_after"]) for r in s.ledger()] == [("reverse", -33, 67)]


def test_partial_refunds_are_cumulative_and_a_full_refund_reverses_exactly_what_was_earned():
    s = given(paid("big", "1000.00"), paid("o1", "99.99", day(1)))  # 119 points at premium
    assert s.points() == [] and s.state().orders["o1"].earned_points == 119
    reversed_ = [s.when(refund("o1", "33.33", day(2 + i))).points() for i in range(3)]
    # floor(119*3333/9999)=39, floor(119*6666/9999)=79 (-40), 119 (-40); rounding each step would give 39*3
    assert reversed_ == [[-39], [-40], [-40]]
    s.then(points_balance=1000)


def test_a_full_refund_in_one_go_reverses_exactly_what_was_earned():
    s = given(paid("big", "1000.00"), paid("o1", "99.99", day(1))).when(refund("o1", "99.99", day(2)))
    assert s.points() == [-119]


def test_a_refund_too_small_to_reverse_a_point_still_counts_against_spend():
    s = given(paid("o1", "100.00")).when(refund("o1", "0.50"))
    assert s.ledger() == []
    s.then(points_balance=100, lifetime_spend_minor=9_950, window_spend_minor=9_950)
    assert s.when(refund("o1", "0.50", day(2))).points() == [-1]


def test_refunds_beyond_the_paid_amount_are_capped():
    s = given(paid("o1", "100.00")).when(refund("o1", "150.00"))
    assert s.points() == [-100]
    s.then(points_balance=0, lifetime_spend_minor=0, window_spend_minor=0)
    assert s.when(refund("o1", "10.00", day(2))).effects == []
    s.then(points_balance=0, lifetime_spend_minor=0)


def test_a_refund_crossing_the_paid_amount_reverses_only_the_rest():
    s = given(paid("o1", "100.00"), refund("o1", "60.00")).when(refund("o1", "60.00", day(2)))
    assert s.points() == [-40]
    s.then(lifetime_spend_minor=0)


def test_refund_of_an_unknown_order_changes_neither_points_nor_spend_and_is_noticed():
    s = given(paid("o1", "100.00"))
    before = s.state().to_dict()
    event = refund("ghost", "20.00")
    s.when(event)
    assert s.effects == s.notices() == [RefundOfUnknownOrder(event.event_id)]
    after = s.state().to_dict()
    for name in ("points_balance", "lots", "debt_points", "lifetime_spend_minor", "spend_12m_minor", "orders",
                 "tier", "last_interaction_ms"):
        assert after[name] == before[name], name
    s.then(events_applied=2)


def test_refund_of_another_customers_order_is_unknown():
    s = given(ev("order.paid", customer="c2", order_id="o1", amount="100"), paid("o9", "5"))
    assert s.when(refund("o1", "100")).notices()
    assert s.state("c2").points_balance == 100


def test_a_reversal_may_take_the_balance_below_zero_and_later_credits_repay_the_debt():
    s = given(paid("o1", "100.00"), ev("redemption.requested", day(1), redemption_id="r1", points=100))
    s.when(refund("o1", "100.00", day(2)))
    assert [(r["kind"], r["points"], r["balance_after"]) for r in s.ledger()] == [("reverse", -100, -100)]
    s.then(points_balance=-100, debt_points=100, lots=[])
    s.when(paid("o2", "50.00", day(3)))
    s.then(points_balance=-50, debt_points=50, lots=[])
    s.when(paid("o3", "80.00", day(4)))
    s.then(points_balance=30, debt_points=0)
    assert s.state().lots[0].points == 30


def test_a_refund_is_not_an_interaction():
    s = given(paid("o1", "100.00")).when(refund("o1", "10.00", day(20)))
    assert s.state().last_interaction_ms == s.state().last_purchase_ms
