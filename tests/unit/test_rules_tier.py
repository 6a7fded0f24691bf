"""docs/rules.md, tier: trailing 365-day net spend, thresholds 1000.00 and 5000.00."""
from __future__ import annotations

import pytest

from tests.support.events import day, ev, paid, refund, tick
from tests.support.scenario import given


@pytest.mark.parametrize("amount, tier", [
    ("999.99", "standard"), ("1000.00", "premium"), ("4999.99", "premium"), ("5000.00", "vip"), ("9999", "vip"),
])
def test_tier_thresholds_are_inclusive_at_1000_and_5000(amount, tier):
    given().when(paid("o1", amount)).then(tier=tier)


def test_a_new_customer_is_standard():
    given().when(ev("customer.registered")).then(tier="standard", window_spend_minor=0)


def test_upgrade_happens_at_once_on_the_order_that_crosses_the_threshold():
    event = paid("o2", "400.00", day(10))
    s = given(paid("o1", "600.00")).when(event)
    assert s.updates(kind="tier_changed") == [{
        "customer_id": "c1", "kind": "tier_changed", "from": "standard", "to": "premium",
        "at": "2026-01-11T02:00:00Z", "source_event_id": event.event_id,
    }]
    s.then(tier="premium", window_spend_minor=100_000)


def test_standard_straight_to_vip_is_one_change():
    s = given().when(paid("o1", "5000.00"))
    assert [(u["from"], u["to"]) for u in s.updates(kind="tier_changed")] == [("standard", "vip")]


def test_a_refund_that_takes_spend_below_the_threshold_downgrades():
    s = given(paid("o1", "1000.00")).then(tier="premium")
    s.when(refund("o1", "0.01"))
    assert [(u["from"], u["to"]) for u in s.updates(kind="tier_changed")] == [("premium", "standard")]
    s.then(tier="standard", window_spend_minor=99_999)


def test_a_refund_downgrades_vip_to_premium():
    s = given(paid("o1", "5000.00")).when(refund("o1", "1.00"))
    s.then(tier="premium")


def test_tier_is_kept_until_the_order_leaves_the_365_day_window():
    s = given(paid("o1", "1000.00")).when(tick(day(365, hours=-1 / 3600)))
    assert s.updates(kind="tier_changed") == []
    s.then(tier="premium")


def test_tier_falls_as_time_passes_365_days_after_the_order():
    clock = tick(day(365))
    s = given(paid("o1", "1000.00")).when(clock)
    assert s.updates(kind="tier_changed") == [{
        "customer_id": "c1", "kind": "tier_changed", "from": "premium", "to": "standard",
        "at": "2027-01-01T02:00:00Z", "source_event_id": clock.event_id,
    }]
    s.then(tier="standard", window_spend_minor=0, lifetime_spend_minor=100_000)


def test_trailing_spend_sums_only_the_orders_of_the_last_365_days():
    s = given(paid("o1", "600.00"), paid("o2", "600.00", day(200))).then(tier="premium", window_spend_minor=120_000)
    s.when(tick(day(365)))
    s.then(tier="standard", window_spend_minor=60_000)
    s.when(tick(day(565)))
    s.then(window_spend_minor=0)


def test_vip_falls_to_premium_as_the_older_orders_leave_the_window():
    s = given(paid("o1", "4000.00"), paid("o2", "1500.00", day(100))).then(tier="vip")
    s.when(tick(day(365)))
    assert [(u["from"], u["to"]) for u in s.updates(kind="tier_changed")] == [("vip", "premium")]
    s.when(tick(day(465)))
    s.then(tier="standard")


def test_net_spend_counts_refunds_of_orders_in_the_window():
    s = given(paid("o1", "800.00"), refund("o1", "100.00"), paid("o2", "250.00", day(2)))
    s.then(tier="standard", window_spend_minor=95_000)


def test_an_old_order_refunded_later_does_not_count_again():
    s = given(paid("o1", "2000.00"), tick(day(366))).then(tier="standard")
    s.when(refund("o1", "500.00", day(367)))
    s.then(tier="standard", window_spend_minor=0, lifetime_spend_minor=150_000)


def test_a_late_order_outside_the_window_does_not_raise_the_tier():
    s = given(tick(day(400))).when(paid("o1", "2000.00", day(0)))
    s.then(tier="standard", lifetime_spend_minor=200_000)
