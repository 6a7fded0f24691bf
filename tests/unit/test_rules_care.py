"""docs/rules.md, care campaigns: points_expiring reminders, tier_upgraded, member_day; each can be turned off."""
from __future__ import annotations

import pytest

from projections.effects import CampaignTriggered
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import CAMPAIGNS, Policy
from tests.support.events import day, ev, paid, refund, tick
from tests.support.scenario import given

# T0 = 2026-01-01T10:00+08:00 = 2026-01-01T02:00Z; default time zone Asia/Shanghai (UTC+8, no DST).


def policy(**campaigns) -> Policy:
    return Policy.model_validate({"campaigns": campaigns})


def ids(s, campaign: str) -> list[str]:
    return [c["trigger_id"] for c in s.campaigns(campaign=campaign)]


def adjust(points: int, at: str, customer: str = "c1"):
    return ev("points.adjusted", at, customer=customer, points=points, reason="seed")


# ---- points_expiring -----------------------------------------------------------------------------------
# A credit at day(0) is a lot expiring 2027-01-01T02:00Z = 2027-01-01 10:00 in Shanghai: its date is
# 2027-01-01, and the reminder falls due 30 days before, at local midnight 2026-12-02 = 2026-12-01T16:00Z.

REMIND_AT = "2026-12-01T16:00:00Z"


def test_a_reminder_fires_30_days_before_the_local_date_on_which_100_points_expire():
    s = given(adjust(150, day(0)))
    assert s.when(tick("2026-12-01T15:59:59Z")).campaigns(campaign="points_expiring") == []
    s.when(tick(REMIND_AT))
    assert s.campaigns(campaign="points_expiring") == [{
        "trigger_id": "points_expiring:c1:2027-01-01", "campaign": "points_expiring", "customer_id": "c1",
        "at": REMIND_AT, "tier": "standard", "status": "dormant", "points_balance": 150,
        "details": {"points": 150, "expiry_date": "2027-01-01", "expires_at": "2027-01-01T02:00:00Z"}}]


@pytest.mark.parametrize("points, fires", [(99, False), (100, True)])
def test_a_reminder_needs_min_points_expiring_on_that_date(points, fires):
    s = given(adjust(points, day(0))).when(tick(REMIND_AT))
    assert ids(s, "points_expiring") == (["points_expiring:c1:2027-01-01"] if fires else [])


def test_the_lots_of_one_local_date_add_up():
    # 2026-01-01T02:00Z and 15:59Z are both 2026-01-01 in Shanghai (10:00 and 23:59): 60 + 40 = 100
    s = given(adjust(60, "2026-01-01T02:00:00Z"), adjust(40, "2026-01-01T15:59:00Z")).when(tick(REMIND_AT))
    assert [c["details"]["points"] for c in s.campaigns(campaign="points_expiring")] == [100]


def test_lots_of_different_local_dates_do_not_add_up():
    # 2026-01-01T16:00Z is already 2026-01-02 in Shanghai: 60 and 40 expire on two dates
    s = given(adjust(60, "2026-01-01T02:00:00Z"), adjust(40, "2026-01-01T16:00:00Z")).when(tick(day(340)))
    assert ids(s, "points_expiring") == []


def test_each_date_is_reminded_once_and_each_date_on_its_own():
    s = given(adjust(150, day(0)), adjust(200, day(10)))
    s.when(tick(REMIND_AT), tick(day(335, 1)), tick(day(345)))
    assert ids(s, "points_expiring") == ["points_expiring:c1:2027-01-01", "points_expiring:c1:2027-01-11"]
    assert [c["at"] for c in s.campaigns(campaign="points_expiring")] == [REMIND_AT, "2026-12-11T16:00:00Z"]


def test_a_redemption_that_leaves_fewer_than_min_points_on_that_date_cancels_the_reminder():
    s = given(adjust(150, day(0)), ev("redemption.requested", day(100), redemption_id="r1", points=51))
    assert ids(s.when(tick(REMIND_AT)), "points_expiring") == []


def test_a_redemption_that_leaves_enough_sends_the_reminder_with_what_is_left():
    s = given(adjust(150, day(0)), ev("redemption.requested", day(100), redemption_id="r1", points=50))
    assert [c["details"]["points"] for c in s.when(tick(REMIND_AT)).campaigns(campaign="points_expiring")] == [100]


def test_a_clock_that_jumps_past_the_reminder_fires_it_at_its_own_time():
    s = given(adjust(150, day(0))).when(tick(day(360)))
    assert [c["at"] for c in s.campaigns(campaign="points_expiring")] == [REMIND_AT]


def test_no_reminder_for_points_already_expired_when_the_clock_gets_there():
    # a partition that was down from before the reminder until after the expiry sends no stale reminder,
    # but still reminds of a later date
    s = given(adjust(150, day(0)), adjust(150, day(30))).when(tick(day(370)))
    assert ids(s, "points_expiring") == ["points_expiring:c1:2027-01-31"]


def test_remind_days_and_min_points_are_the_policys():
    p = policy(points_expiring={"remind_days": 7, "min_points": 10})
    s = given(adjust(10, day(0)), policy=p)
    assert ids(s.when(tick("2026-12-24T15:59:59Z")), "points_expiring") == []
    assert [c["at"] for c in s.when(tick("2026-12-24T16:00:00Z")).campaigns(campaign="points_expiring")] == [
        "2026-12-24T16:00:00Z"]


def test_the_date_is_the_customers_local_date():
    # New York (UTC-5 in winter): the lot expiring 2027-01-01T02:00Z expires on 2026-12-31 there,
    # so the reminder is due at local midnight 2026-12-01 = 2026-12-01T05:00Z
    s = given(ev("customer.registered", day(0), timezone="America/New_York"), adjust(150, day(0)))
    assert ids(s.when(tick("2026-12-01T04:59:59Z")), "points_expiring") == []
    s.when(tick("2026-12-01T05:00:00Z"))
    [reminder] = s.campaigns(campaign="points_expiring")
    # The customer's time zone decides the date, but no output carries it (personal data stays in the state).
    assert (reminder["trigger_id"], reminder["at"], "timezone" in reminder["details"]) == (
        "points_expiring:c1:2026-12-31", "2026-12-01T05:00:00Z", False)


def test_a_late_credit_to_an_earlier_date_is_reminded_at_its_own_time():
    s = given(adjust(150, day(100)), tick(day(120)))   # reminder for day 465 set
    s.apply(adjust(150, day(10)))                       # late: its lot expires on day 375
    s.when(tick(day(346)))
    assert ids(s, "points_expiring") == ["points_expiring:c1:2027-01-11"]


def test_points_refunded_by_a_reversal_leave_the_reminder_cancelled():
    s = given(ev("order.paid", day(0), order_id="o1", amount="150.00"),
              ev("order.refunded", day(5), order_id="o1", amount="150.00"))
    assert ids(s.when(tick(REMIND_AT)), "points_expiring") == []


# ---- tier_upgraded -------------------------------------------------------------------------------------

def test_a_rise_of_tier_is_congratulated_once_with_the_customer_as_they_now_are():
    s = given().when(paid("o1", "1000.00", day(0)))
    assert s.campaigns() == [{
        "trigger_id": "tier_upgraded:c1:2026-01-01:premium", "campaign": "tier_upgraded", "customer_id": "c1",
        "at": "2026-01-01T02:00:00Z", "tier": "premium", "status": "active", "points_balance": 1000,
        "details": {"from": "standard", "to": "premium"}}]


def test_a_jump_of_two_tiers_is_one_congratulation():
    s = given().when(paid("o1", "5000.00", day(0)))
    assert ids(s, "tier_upgraded") == ["tier_upgraded:c1:2026-01-01:vip"]


def test_two_rises_on_one_day_have_two_ids():
    s = given().when(paid("o1", "1000.00", day(0)), paid("o2", "4000.00", day(0, 1)))
    assert ids(s, "tier_upgraded") == ["tier_upgraded:c1:2026-01-01:premium", "tier_upgraded:c1:2026-01-01:vip"]


def test_a_fall_is_not_congratulated():
    s = given(paid("o1", "1000.00", day(0))).when(refund("o1", "1.00", day(1)))
    assert s.updates(kind="tier_changed") and s.campaigns() == []


def test_a_return_within_the_cooldown_to_a_congratulated_tier_is_not_congratulated():
    s = given(paid("o1", "1000.00", day(0)), refund("o1", "1.00", day(1)))   # left premium on day 1
    assert s.when(paid("o2", "1.00", day(30, -1))).campaigns() == []         # back 29 days 23 h later
    assert s.updates(kind="tier_changed")[0]["to"] == "premium"


def test_a_return_after_the_cooldown_is_congratulated_again():
    s = given(paid("o1", "1000.00", day(0)), refund("o1", "1.00", day(1)))
    s.when(paid("o2", "1.00", day(31)))   # exactly 30 days after leaving
    assert ids(s, "tier_upgraded") == ["tier_upgraded:c1:2026-02-01:premium"]


def test_the_cooldown_is_the_policys():
    s = given(paid("o1", "1000.00", day(0)), refund("o1", "1.00", day(1)),
              policy=policy(tier_upgrade_cooldown_days=60))
    assert s.when(paid("o2", "1.00", day(31))).campaigns() == []


def test_a_rise_to_a_tier_never_congratulated_is_congratulated_within_the_cooldown():
    s = given(paid("o1", "5000.00", day(0)), refund("o1", "4500.00", day(1)))   # vip, then standard
    s.when(paid("o2", "500.00", day(2)))                                         # premium: new to them
    assert ids(s, "tier_upgraded") == ["tier_upgraded:c1:2026-01-03:premium"]


def test_a_bounce_does_not_restart_the_cooldown_from_the_skipped_return():
    s = given(paid("o1", "1000.00", day(0)), refund("o1", "1.00", day(1)), paid("o2", "1.00", day(5)),
              refund("o2", "1.00", day(6)))   # back to premium on day 5 (no trigger), left again on day 6
    assert s.when(paid("o3", "1.00", day(40))).campaigns(campaign="tier_upgraded") != []  # 34 days after day 6


# ---- member_day ----------------------------------------------------------------------------------------
# monthly_day 18: 2026-01-18 00:00 in Shanghai = 2026-01-17T16:00Z.

MEMBER_DAYS = policy(member_day={"monthly_day": 18})


def test_a_qualifying_customer_gets_one_trigger_at_the_local_midnight_of_the_member_day():
    s = given(ev("customer.registered", day(0)), policy=MEMBER_DAYS)   # potential
    assert s.when(tick("2026-01-17T15:59:59Z")).campaigns() == []
    s.when(tick("2026-01-17T16:00:00Z"), tick("2026-01-17T20:00:00Z"))
    assert s.campaigns() == [{
        "trigger_id": "member_day:c1:2026-01-18", "campaign": "member_day", "customer_id": "c1",
        "at": "2026-01-17T16:00:00Z", "tier": "standard", "status": "potential", "points_balance": 0,
        "details": {"local_date": "2026-01-18"}}]


def test_member_days_repeat_every_month():
    s = given(ev("customer.registered", day(0)), policy=MEMBER_DAYS)
    s.when(*(tick(day(n)) for n in range(10, 70, 2)))
    assert ids(s, "member_day") == ["member_day:c1:2026-01-18", "member_day:c1:2026-02-18"]


def test_a_dormant_customer_does_not_qualify_by_default():
    s = given(ev("customer.registered", day(0)), tick(day(190)), policy=MEMBER_DAYS)   # dormant from day 180
    assert ids(s.when(tick(day(196)), tick(day(200))), "member_day") == []


def test_the_qualifying_statuses_and_tiers_are_the_policys():
    p = policy(member_day={"monthly_day": 18, "statuses": ["dormant"], "tiers": ["standard"]})
    s = given(ev("customer.registered", day(0)), tick(day(190)), policy=p)
    assert ids(s.when(tick(day(200))), "member_day") == ["member_day:c1:2026-07-18"]
    vip_only = policy(member_day={"monthly_day": 18, "tiers": ["vip"]})
    s = given(ev("customer.registered", day(0)), policy=vip_only)
    assert ids(s.when(tick(day(20))), "member_day") == []


def test_member_days_may_be_dates():
    p = policy(member_day={"dates": ["2026-11-11", "2026-03-08"], "statuses": ["active", "potential", "dormant"]})
    s = given(ev("customer.checked_in", day(0)), policy=p)
    s.when(*(tick(day(n)) for n in range(5, 330, 3)))
    assert ids(s, "member_day") == ["member_day:c1:2026-03-08", "member_day:c1:2026-11-11"]


def test_the_member_day_starts_at_midnight_in_the_customers_time_zone():
    # New York is UTC-5 in January: 2026-01-18 00:00 there is 2026-01-18T05:00Z
    s = given(ev("customer.registered", day(0), timezone="America/New_York"), policy=MEMBER_DAYS)
    assert s.when(tick("2026-01-18T04:59:59Z")).campaigns() == []
    assert [c["at"] for c in s.when(tick("2026-01-18T05:00:00Z")).campaigns()] == ["2026-01-18T05:00:00Z"]


@pytest.mark.parametrize("late, fires", [("2026-01-20T16:00:00Z", True), ("2026-01-20T16:00:00.001Z", False)])
def test_a_partition_catching_up_fires_a_member_day_at_most_birthday_grace_days_late(late, fires):
    s = given(ev("customer.registered", day(0)), policy=MEMBER_DAYS).when(tick(late))
    assert ids(s, "member_day") == (["member_day:c1:2026-01-18"] if fires else [])
    assert ids(s.when(tick(day(48))), "member_day") == ["member_day:c1:2026-02-18"]


def test_a_customer_who_qualifies_only_after_midnight_waits_for_the_next_member_day():
    s = given(ev("customer.registered", day(0)), tick(day(190)), policy=MEMBER_DAYS)   # dormant
    s.when(paid("o1", "10.00", "2026-07-18T02:00:00Z"))                              # active at 10:00 local
    assert ids(s, "member_day") == []
    assert ids(s.when(tick(day(229))), "member_day") == ["member_day:c1:2026-08-18"]


def test_a_customer_first_seen_after_midnight_of_a_member_day_waits_for_the_next_one():
    s = given(tick("2026-01-17T00:00:00Z"), policy=MEMBER_DAYS)
    s.apply(ev("customer.registered", "2026-01-18T09:00:00+08:00"))
    assert ids(s.when(tick("2026-01-19T00:00:00Z")), "member_day") == []


def test_a_change_of_time_zone_moves_the_member_day_midnight():
    s = given(ev("customer.registered", day(0)), ev("customer.profile_updated", day(1), timezone="America/New_York"),
              policy=MEMBER_DAYS)
    assert s.when(tick("2026-01-17T16:00:00Z")).campaigns() == []
    assert [c["at"] for c in s.when(tick("2026-01-18T05:00:00Z")).campaigns()] == ["2026-01-18T05:00:00Z"]


class CountingStore(MemoryStore):
    """A memory store that counts how many customers are read."""
    reads = 0

    def get(self, customer_id):
        CountingStore.reads += 1
        return super().get(customer_id)


def test_a_member_day_visits_only_the_customers_who_qualify():
    p = policy(member_day={"monthly_day": 18, "statuses": ["active"]})
    fold = PartitionFold(CountingStore(), p)
    for n in range(300):   # registered long ago: potential, then dormant, no further due time
        fold.apply(ev("customer.registered", "2025-01-01T00:00:00Z", customer=f"quiet-{n}"))
    for n in range(3):
        fold.apply(ev("order.paid", "2025-07-01T00:00:00Z", customer=f"buyer-{n}", order_id="o1", amount="1.00"))
    fold.apply(tick("2025-07-17T00:00:00Z"))   # the quiet ones are dormant by now, the buyers active
    CountingStore.reads = 0
    _, effects = fold.apply(tick("2025-07-17T16:00:00Z"))   # 2025-07-18 00:00 in Shanghai
    assert sorted(e.record["customer_id"] for e in effects if isinstance(e, CampaignTriggered)) == [
        "buyer-0", "buyer-1", "buyer-2"]
    assert CountingStore.reads == 3


# ---- every campaign can be turned off ------------------------------------------------------------------

def every_campaign_history(p: Policy):
    """A history in which each of the five campaigns fires once."""
    return given(
        ev("customer.registered", day(0), birthday="02-01"),
        paid("o1", "1000.00", day(0, 1)),                  # tier_upgraded (premium)
        tick(day(17)),                                      # member_day 2026-01-18 (active)
        tick(day(31)),                                      # birthday 2026-02-01
        tick(day(250)),                                     # dormant: win_back
        tick(day(336)),                                     # points_expiring for 2027-01-01
        policy=p)


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_each_campaign_can_be_turned_off_alone(name):
    on = every_campaign_history(policy(member_day={"monthly_day": 18}))
    off = every_campaign_history(policy(member_day={"monthly_day": 18}, disabled=[name]))
    assert sorted(e.record["campaign"] for e in on.history if isinstance(e, CampaignTriggered)) == sorted(CAMPAIGNS)
    assert sorted(e.record["campaign"] for e in off.history if isinstance(e, CampaignTriggered)) == sorted(
        set(CAMPAIGNS) - {name})
    # turning a campaign off changes nothing else: same points, tier and status
    assert (off.state().points_balance, off.state().tier, off.state().status) == (
        on.state().points_balance, on.state().tier, on.state().status)
