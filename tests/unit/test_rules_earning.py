"""docs/rules.md, earn: paid orders by tier multiplier, check-ins, shares and reviews."""
from __future__ import annotations

import pytest

from tests.support.events import day, ev, paid
from tests.support.scenario import given


def test_paid_order_earns_its_amount_at_standard_as_an_earn_entry():
    order = paid("o1", "100.00")
    s = given().when(order)
    assert s.ledger() == [{
        "entry_id": "c1:1", "customer_id": "c1", "occurred_at": "2026-01-01T02:00:00Z", "kind": "earn",
        "points": 100, "balance_after": 100, "source_event_id": order.event_id,
    }]
    s.then(points_balance=100, lifetime_spend_minor=10_000)


@pytest.mark.parametrize("amount, points", [("99.99", 99), ("0.99", 0), ("1.00", 1), ("123.45", 123)])
def test_standard_earns_the_floor_of_the_amount(amount, points):
    given().when(paid("o1", amount)).then(points_balance=points)


def test_an_order_worth_less_than_a_point_writes_no_ledger_entry_but_counts_as_spend():
    s = given().when(paid("o1", "0.99"))
    assert s.ledger() == []
    s.then(points_balance=0, lifetime_spend_minor=99, last_purchase_ms=s.state().first_seen_ms)


def test_premium_earns_floor_of_amount_times_1_2():
    s = given(paid("big", "1000.00")).then(tier="premium")
    assert s.when(paid("o2", "99.99", day(1))).points() == [119]  # 119.988


def test_vip_earns_floor_of_amount_times_1_5():
    s = given(paid("big", "5000.00")).then(tier="vip")
    assert s.when(paid("o2", "99.99", day(1))).points() == [149]  # 149.985


def test_the_order_that_crosses_into_premium_earns_at_the_tier_held_before_it():
    s = given(paid("o1", "600.00")).then(tier="standard")
    s.when(paid("o2", "500.00", day(1)))
    assert s.points() == [500]
    assert s.updates(kind="tier_changed") == [{
        "customer_id": "c1", "kind": "tier_changed", "from": "standard", "to": "premium",
        "at": "2026-01-02T02:00:00Z", "source_event_id": s.effects[0].record["source_event_id"],
    }]
    assert s.when(paid("o3", "100.00", day(2))).points() == [120]


def test_a_first_order_of_exactly_1000_earns_1000_not_1200():
    given().when(paid("o1", "1000.00")).then(points_balance=1000, tier="premium")


def test_the_order_that_crosses_into_vip_earns_at_premium():
    s = given(paid("o1", "1000.00")).then(tier="premium")
    assert s.when(paid("o2", "4000.00", day(1))).points() == [4800]
    s.then(tier="vip")


def test_check_in_earns_5_points_as_a_bonus():
    s = given().when(ev("customer.checked_in"))
    assert [(r["kind"], r["points"]) for r in s.ledger()] == [("bonus", 5)]


def test_a_second_check_in_on_the_same_local_day_earns_nothing():
    s = given(ev("customer.checked_in", day(0, hours=-9.5)))  # 00:30 local
    s.when(ev("customer.checked_in", day(0, hours=13.9)))      # 23:54 local
    assert s.ledger() == []
    s.then(points_balance=5, events_applied=2)


def test_check_in_at_0030_shanghai_is_a_new_local_day_though_the_same_utc_day():
    late_evening = ev("customer.checked_in", "2026-01-01T23:00:00+08:00")    # 15:00Z on 1 Jan
    after_midnight = ev("customer.checked_in", "2026-01-02T00:30:00+08:00")  # 16:30Z on 1 Jan
    s = given(late_evening).when(after_midnight)
    assert s.points(kind="bonus") == [5]
    s.then(points_balance=10)


def test_the_same_two_check_ins_are_one_local_day_for_a_customer_in_london():
    s = given(ev("customer.registered", day(-1), timezone="Europe/London"),
              ev("customer.checked_in", "2026-01-01T23:00:00+08:00"))
    assert s.when(ev("customer.checked_in", "2026-01-02T00:30:00+08:00")).ledger() == []
    s.then(points_balance=5)


def test_the_customers_own_time_zone_decides_the_local_day():
    # 10:00 and 14:00 in Shanghai are 21:00 on 31 Dec and 01:00 on 1 Jan in New York.
    s = given(ev("customer.registered", day(-1), timezone="America/New_York"),
              ev("customer.checked_in", "2026-01-01T10:00:00+08:00"))
    assert s.when(ev("customer.checked_in", "2026-01-01T14:00:00+08:00")).points() == [5]
    t = given(ev("customer.registered", day(-1)), ev("customer.checked_in", "2026-01-01T10:00:00+08:00"))
    assert t.when(ev("customer.checked_in", "2026-01-01T14:00:00+08:00")).points() == []


def test_check_in_on_the_next_local_day_earns_again():
    s = given(ev("customer.checked_in", day(0)))
    assert s.when(ev("customer.checked_in", day(1))).points() == [5]


def test_shares_earn_2_points_up_to_3_per_local_day():
    s = given()
    earned = [s.when(ev("content.shared", day(0, hours=h), channel="wechat")).points() for h in range(5)]
    assert earned == [[2], [2], [2], [], []]
    assert s.when(ev("content.shared", day(1))).points() == [2]
    s.then(points_balance=8)


def test_share_and_check_in_caps_are_counted_separately():
    s = given(*[ev("content.shared", day(0, hours=h)) for h in range(3)])
    assert s.when(ev("customer.checked_in", day(0, hours=4))).points() == [5]


def test_share_cap_follows_the_local_day_not_the_utc_day():
    s = given(*[ev("content.shared", f"2026-01-01T2{h}:00:00+08:00") for h in range(3)])
    assert s.when(ev("content.shared", "2026-01-02T00:30:00+08:00")).points() == [2]


def test_review_of_a_paid_order_earns_10_points_once():
    s = given(paid("o1", "50.00"))
    assert [(r["kind"], r["points"]) for r in s.when(ev("review.posted", day(1), order_id="o1", rating=5)).ledger()] \
        == [("bonus", 10)]
    assert s.when(ev("review.posted", day(2), order_id="o1", rating=1)).ledger() == []
    s.then(points_balance=60)


def test_each_paid_order_can_be_reviewed_once():
    s = given(paid("o1", "50.00"), paid("o2", "50.00"), ev("review.posted", day(1), order_id="o1", rating=4))
    assert s.when(ev("review.posted", day(1), order_id="o2", rating=4)).points() == [10]


def test_review_of_an_unknown_order_earns_nothing():
    s = given(paid("o1", "50.00")).when(ev("review.posted", day(1), order_id="nope", rating=5))
    assert s.ledger() == []
    s.then(points_balance=50)


def test_review_of_another_customers_order_earns_nothing():
    s = given(ev("order.paid", customer="c2", order_id="o1", amount="50"))
    s.when(ev("review.posted", day(1), customer="c1", order_id="o1", rating=5))
    assert s.ledger() == []


def test_review_before_its_order_is_paid_earns_nothing():
    s = given(ev("review.posted", day(0), order_id="o1", rating=5)).then(points_balance=0)
    assert s.when(paid("o1", "50.00", day(1))).points() == [50]


def test_positive_adjustment_credits_and_negative_adjustment_debits():
    s = given().when(ev("points.adjusted", points=40, reason="goodwill"))
    assert [(r["kind"], r["points"]) for r in s.ledger()] == [("adjust", 40)]
    s.when(ev("points.adjusted", points=-15, reason="correction"))
    assert [(r["kind"], r["points"], r["balance_after"]) for r in s.ledger()] == [("adjust", -15, 25)]


def test_zero_adjustment_writes_nothing():
    assert given().when(ev("points.adjusted", points=0, reason="noop")).ledger() == []


def test_ledger_entry_ids_are_a_per_customer_sequence():
    s = given(paid("o1", "10"), ev("order.paid", customer="c2", order_id="o1", amount="10"))
    s.when(ev("customer.checked_in", day(1)))
    assert [r["entry_id"] for r in s.ledger()] == ["c1:2"]
