"""docs/rules.md, rewards: claims buy coupons with points; a coupon is used once or expires."""
from __future__ import annotations

import pytest

from projections.effects import Outcome
from projections.documents import customer_view
from schemas.policy import Policy
from tests.support.events import day, ev, tick
from tests.support.scenario import given

POLICY = Policy.model_validate({"rewards": {
    "mug": {"points": 100, "coupon_value": "20.00", "min_order": "50.00", "valid_days": 30},
    "tea": {"points": 50, "percent_off": 15, "valid_days": 10, "min_tier": "premium", "per_customer_per_year": 2,
            "refund_points_on_expiry": True},
}})


def claim(claim_id: str, reward_id: str = "mug", at: str = day(1), customer: str = "c1"):
    return ev("reward.claimed", at, customer=customer, claim_id=claim_id, reward_id=reward_id)


def use(coupon_id: str = "c1:k1", order_id: str = "o1", at: str = day(2), **payload):
    return ev("coupon.used", at, coupon_id=coupon_id, order_id=order_id, **payload)


def funded(points: int = 500, *more):
    return given(ev("points.adjusted", day(0), points=points, reason="seed"), *more, policy=POLICY)


def premium(points: int = 500):
    """A premium customer (1000.00 spent earns 1000 points) with `points` more."""
    return funded(points, ev("order.paid", day(0, 1), order_id="o-big", amount="1000.00"))


# ---- claims --------------------------------------------------------------------------------------------

def test_an_accepted_claim_takes_the_points_like_a_redemption_and_issues_a_coupon():
    event = claim("k1")
    s = funded(500).when(event)
    assert s.ledger() == [{
        "entry_id": "c1:2", "customer_id": "c1", "occurred_at": "2026-01-02T02:00:00Z", "kind": "redeem",
        "points": -100, "balance_after": 400, "source_event_id": event.event_id, "reward_id": "mug",
        "claim_id": "k1",
    }]
    # the expiry is occurred_at + valid_days: 2026-01-02T02:00Z + 30 days
    assert s.coupons() == [{
        "customer_id": "c1", "kind": "coupon_issued", "coupon_id": "c1:k1", "reward_id": "mug", "claim_id": "k1",
        "points": 100, "coupon_value": "20.00", "percent_off": None, "min_order": "50.00",
        "expires_at": "2026-02-01T02:00:00Z", "at": "2026-01-02T02:00:00Z", "source_event_id": event.event_id,
    }]
    s.then(points_balance=400)
    assert customer_view(s.state())["coupons"] == [{
        "coupon_id": "c1:k1", "reward_id": "mug", "expires_at": "2026-02-01T02:00:00Z", "coupon_value": "20.00",
        "percent_off": None, "min_order": "50.00"}]


def test_a_percent_off_coupon_shows_its_percentage():
    s = premium().when(claim("k1", "tea"))
    [issued] = s.coupons()
    assert (issued["coupon_value"], issued["percent_off"], issued["min_order"]) == (None, 15, None)


@pytest.mark.parametrize("balance", [100, 101])
def test_a_claim_is_accepted_when_the_balance_covers_the_cost(balance):
    s = funded(balance).when(claim("k1"))
    assert s.points(kind="redeem") == [-100]
    s.then(points_balance=balance - 100)


def rejection(s) -> tuple:
    [update] = s.updates()
    return update["kind"], update["reason"]


def test_a_claim_above_the_balance_is_rejected_for_insufficient_points():
    event = claim("k1")
    s = funded(99).when(event)
    assert s.updates() == [{"customer_id": "c1", "kind": "claim_rejected", "reason": "insufficient_points",
                            "claim_id": "k1", "reward_id": "mug", "at": "2026-01-02T02:00:00Z",
                            "source_event_id": event.event_id}]
    assert s.ledger() == [] and s.coupons() == []
    s.then(points_balance=99, coupons={})


def test_a_claim_while_in_debt_is_rejected_for_insufficient_points():
    s = given(ev("points.adjusted", day(0), points=-5, reason="x"), policy=POLICY).when(claim("k1"))
    assert rejection(s) == ("claim_rejected", "insufficient_points")


def test_a_claim_of_a_reward_not_in_the_catalog_is_rejected_as_unknown_reward():
    s = funded(500).when(claim("k1", "yacht"))
    assert rejection(s) == ("claim_rejected", "unknown_reward")
    s.then(points_balance=500)


def test_a_claim_below_the_rewards_min_tier_is_rejected_as_tier_too_low():
    s = funded(500).when(claim("k1", "tea"))
    assert rejection(s) == ("claim_rejected", "tier_too_low")
    s.then(points_balance=500)


def test_a_claim_at_or_above_the_min_tier_is_accepted():
    s = premium().when(claim("k1", "tea"))
    assert s.points(kind="redeem") == [-50]


def test_the_yearly_cap_rejects_the_next_claim_as_limit_reached():
    s = premium(500)
    s.apply(claim("k1", "tea", day(1)), claim("k2", "tea", day(2)))
    s.when(claim("k3", "tea", day(3)))
    assert rejection(s) == ("claim_rejected", "limit_reached")
    s.then(points_balance=1500 - 100)


def test_the_yearly_cap_counts_per_local_calendar_year():
    # Asia/Shanghai (UTC+8): 2026-12-31T16:00Z is already 2027-01-01 there.
    s = premium(500)
    s.apply(claim("k1", "tea", "2026-06-01T00:00:00Z"), claim("k2", "tea", "2026-12-31T15:59:00Z"))
    s.when(claim("k3", "tea", "2026-12-31T16:00:00Z"))
    assert s.points(kind="redeem") == [-50]


def test_the_cap_is_per_reward():
    s = premium(500)
    s.apply(claim("k1", "tea", day(1)), claim("k2", "tea", day(2)))
    assert s.when(claim("k3", "mug", day(3))).points(kind="redeem") == [-100]


def test_rejected_claims_do_not_count_against_the_cap():
    s = given(ev("order.paid", day(0), order_id="o1", amount="1000.00"), policy=POLICY)  # 1000 points
    s.apply(claim("k1", "tea", day(1)), claim("k2", "tea", day(1, 1)))   # 950, 900
    s.apply(ev("points.adjusted", day(2), points=-900, reason="x"))       # 0
    s.when(claim("k3", "tea", day(3)))
    assert rejection(s) == ("claim_rejected", "limit_reached")  # two accepted: the cap, not the points


@pytest.mark.parametrize("setup, reward, reason", [
    # the checks run in this order: unknown reward, tier, yearly cap, points
    (lambda: funded(0), "yacht", "unknown_reward"),
    (lambda: funded(0), "tea", "tier_too_low"),
])
def test_the_first_failed_check_names_the_reason(setup, reward, reason):
    assert rejection(setup().when(claim("k1", reward))) == ("claim_rejected", reason)


def test_a_capped_claim_is_limit_reached_even_without_the_points():
    s = premium(0)  # 1000 points
    s.apply(claim("k1", "tea", day(1)), claim("k2", "tea", day(2)), ev("points.adjusted", day(2, 1), points=-900,
                                                                         reason="x"))
    assert rejection(s.when(claim("k3", "tea", day(3)))) == ("claim_rejected", "limit_reached")


def test_a_repeated_claim_id_changes_nothing():
    s = funded(500)
    s.apply(claim("k1", at=day(1)))
    before = s.state().to_dict()
    s.when(claim("k1", at=day(2)))
    assert s.effects == [] and s.outcomes == [Outcome.APPLIED]
    after = s.state().to_dict()
    assert (after["points_balance"], after["coupons"]) == (before["points_balance"], before["coupons"]) == (
        400, before["coupons"])


def test_a_rejected_claim_id_stays_used():
    s = funded(50)
    s.apply(claim("k1", at=day(1)), ev("points.adjusted", day(1, 1), points=500, reason="top up"))
    assert s.when(claim("k1", at=day(2))).effects == []
    s.then(points_balance=550, coupons={})


def test_a_claim_is_an_interaction():
    s = funded(500).when(claim("k1", at=day(40)))
    assert s.state().last_interaction_ms == s.state().seen_event_ids[s.ledger()[0]["source_event_id"]]


# ---- using a coupon ------------------------------------------------------------------------------------

def with_coupon(points: int = 500):
    return funded(points, claim("k1"))


def test_a_coupon_is_used_once_on_an_order_of_at_least_min_order():
    event = use(amount="50.00")
    s = with_coupon().when(event)
    assert s.coupons() == [{"customer_id": "c1", "kind": "coupon_used", "coupon_id": "c1:k1", "reward_id": "mug",
                            "order_id": "o1", "at": "2026-01-03T02:00:00Z", "source_event_id": event.event_id}]
    assert s.updates() == [] and s.ledger() == []
    assert customer_view(s.state())["coupons"] == []


def test_the_order_amount_defaults_to_the_paid_orders():
    s = with_coupon()
    s.apply(ev("order.paid", day(1, 2), order_id="o1", amount="80.00"))
    assert [c["kind"] for c in s.when(use(order_id="o1")).coupons()] == ["coupon_used"]


def coupon_rejection(s) -> str:
    [update] = s.updates(kind="coupon_rejected")
    assert s.coupons() == []
    return update["reason"]


def test_a_second_use_on_another_order_is_rejected_as_already_used():
    s = with_coupon()
    s.apply(use(order_id="o1", amount="60.00"))
    event = use(order_id="o2", amount="60.00", at=day(3))
    s.when(event)
    assert s.updates() == [{"customer_id": "c1", "kind": "coupon_rejected", "reason": "already_used",
                            "coupon_id": "c1:k1", "order_id": "o2", "at": "2026-01-04T02:00:00Z",
                            "source_event_id": event.event_id}]


def test_the_same_use_again_changes_nothing():
    s = with_coupon()
    s.apply(use(order_id="o1", amount="60.00"))
    assert s.when(use(order_id="o1", amount="60.00", at=day(3))).effects == []


def test_an_unknown_coupon_is_rejected():
    assert coupon_rejection(with_coupon().when(use("c1:nope", amount="60.00"))) == "unknown_coupon"


def test_another_customers_coupon_is_unknown_to_this_customer():
    s = with_coupon()
    s.apply(ev("points.adjusted", day(0), customer="c2", points=500, reason="seed"))
    s.when(ev("coupon.used", day(2), customer="c2", coupon_id="c1:k1", order_id="o9", amount="60.00"))
    [update] = s.updates()
    assert (update["customer_id"], update["reason"]) == ("c2", "unknown_coupon")
    assert customer_view(s.state("c1"))["coupons"][0]["coupon_id"] == "c1:k1"


@pytest.mark.parametrize("amount", ["49.99", "0.01"])
def test_an_order_below_min_order_is_rejected(amount):
    assert coupon_rejection(with_coupon().when(use(amount=amount))) == "below_min_order"


def test_a_paid_order_below_min_order_is_rejected():
    s = with_coupon()
    s.apply(ev("order.paid", day(1, 2), order_id="o1", amount="49.99"))
    assert coupon_rejection(s.when(use(order_id="o1"))) == "below_min_order"


def test_without_an_amount_an_order_not_paid_is_rejected_as_unknown_order():
    assert coupon_rejection(with_coupon().when(use(order_id="o-never-paid"))) == "unknown_order"


def test_a_coupon_without_min_order_needs_no_amount():
    s = premium().when(claim("k1", "tea"), use(order_id="o-never-paid"))
    assert [c["kind"] for c in s.coupons()] == ["coupon_issued", "coupon_used"]


def test_a_rejected_use_leaves_the_coupon_open_for_a_valid_one():
    s = with_coupon()
    s.apply(use(order_id="o1", amount="10.00"))
    assert [c["kind"] for c in s.when(use(order_id="o2", amount="90.00", at=day(3))).coupons()] == ["coupon_used"]


def test_a_coupon_use_is_an_interaction():
    s = with_coupon().when(use(amount="60.00", at=day(20)))
    assert s.state().last_interaction_ms == s.state().seen_event_ids[s.coupons()[0]["source_event_id"]]


# ---- expiry --------------------------------------------------------------------------------------------

def test_a_coupon_is_open_until_its_expiry_and_then_expires_without_returning_points():
    s = with_coupon()
    # issued 2026-01-02T02:00Z, valid 30 days: expires 2026-02-01T02:00Z
    assert s.when(tick("2026-02-01T01:59:59Z")).coupons() == []
    assert customer_view(s.state())["coupons"] != []
    event = tick("2026-02-01T02:00:00Z")
    s.when(event)
    assert s.coupons() == [{"customer_id": "c1", "kind": "coupon_expired", "coupon_id": "c1:k1",
                            "reward_id": "mug", "points_refunded": 0, "at": "2026-02-01T02:00:00Z",
                            "source_event_id": event.event_id}]
    assert s.ledger() == []
    s.then(points_balance=400)
    assert customer_view(s.state())["coupons"] == []


def test_an_expired_coupon_is_rejected_as_expired():
    s = with_coupon()
    s.apply(tick(day(40)))
    assert coupon_rejection(s.when(use(amount="60.00", at=day(41)))) == "expired"


def test_a_use_at_the_expiry_instant_is_too_late():
    s = with_coupon().when(use(amount="60.00", at="2026-02-01T02:00:00Z"))
    # the use moves the clock to the expiry first, so the coupon expires, then the use is refused
    assert [c["kind"] for c in s.coupons()] == ["coupon_expired"]
    assert [u["reason"] for u in s.updates(kind="coupon_rejected")] == ["expired"]


def test_a_used_coupon_does_not_expire():
    s = with_coupon()
    s.apply(use(amount="60.00"))
    assert s.when(tick(day(60))).coupons() == []


def test_with_refund_points_on_expiry_an_expired_coupon_returns_its_points_as_a_new_lot():
    s = premium(0)  # 1000 points, premium
    s.apply(claim("k1", "tea", day(1)))   # -50: 950; expires day 11
    event = tick(day(20))
    s.when(event)
    assert [c["points_refunded"] for c in s.coupons(kind="coupon_expired")] == [50]
    assert s.ledger() == [{"entry_id": "c1:3", "customer_id": "c1", "occurred_at": "2026-01-12T02:00:00Z",
                           "kind": "coupon_refund", "points": 50, "balance_after": 1000,
                           "source_event_id": event.event_id, "reward_id": "tea", "claim_id": "k1"}]
    s.then(points_balance=1000)
    # the refunded points are a lot of their own: 365 days after the coupon's expiry
    assert [50, "2027-01-12T02:00:00Z"] in [[p["points"], p["expires_at"]]
                                           for p in customer_view(s.state())["points_expiring"]]


def test_a_late_claim_whose_coupon_is_already_past_its_expiry_expires_at_once():
    s = funded(500)
    s.apply(tick(day(100)))
    s.when(claim("k1", at=day(50)))  # expires day 80, before the clock
    assert [c["kind"] for c in s.coupons()] == ["coupon_issued", "coupon_expired"]
    assert s.coupons(kind="coupon_expired")[0]["at"] == "2026-03-22T02:00:00Z"  # day 80


def test_coupons_list_soonest_expiry_first():
    s = premium(0)
    s.apply(claim("k1", "mug", day(1)), claim("k2", "tea", day(2)))  # mug: day 31, tea: day 12
    assert [c["coupon_id"] for c in customer_view(s.state())["coupons"]] == ["c1:k2", "c1:k1"]


# ---- retention -----------------------------------------------------------------------------------------

def test_a_closed_coupon_is_remembered_for_redemption_id_days_then_unknown():
    s = given(ev("points.adjusted", day(0), points=500, reason="seed"), claim("k1"),
              ev("coupon.used", day(2), coupon_id="c1:k1", order_id="o1", amount="60.00"), policy=POLICY)
    # used 2026-01-03T02:00Z; remembered while the clock is before + 400 days (the default redemption_id_days)
    # = 2027-02-07T02:00Z, long after its claim's event ids (event_id_days, 7 by default) are forgotten
    s.apply(tick("2027-02-07T01:59:59Z"))
    assert coupon_rejection(s.when(use(order_id="o2", amount="60.00", at="2027-02-07T01:59:59Z"))) == \
        "already_used"
    s.apply(tick("2027-02-07T02:00:00Z"))
    assert coupon_rejection(s.when(use(order_id="o3", amount="60.00", at="2027-02-07T02:00:00Z"))) == \
        "unknown_coupon"
