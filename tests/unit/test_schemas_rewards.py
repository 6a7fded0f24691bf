"""The reward events' bad forms go to the DLQ with a reason; the reward catalog and care campaigns are
validated at start like the rest of the policy; their outcomes are counted on /metrics."""
from __future__ import annotations

import orjson
import pytest

from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy, PolicyError, load_policy
from schemas.validate import Rejection, validate_document, validate_record
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Pipeline, Record
from streams.settings import Settings
from tests.support.events import doc
from tests.support.folds import FoldsFrom
from tests.support.promtext import samples, value


@pytest.mark.parametrize("document, reason, field", [
    (doc("reward.claimed", reward_id="mug"), "missing_field", "payload.claim_id"),
    (doc("reward.claimed", claim_id="k1"), "missing_field", "payload.reward_id"),
    (doc("coupon.used", order_id="o1"), "missing_field", "payload.coupon_id"),
    (doc("coupon.used", coupon_id="c1:k1"), "missing_field", "payload.order_id"),
    (doc("reward.claimed", claim_id="", reward_id="mug"), "invalid_field", "payload.claim_id"),
    (doc("reward.claimed", claim_id="k" * 129, reward_id="mug"), "invalid_field", "payload.claim_id"),
    (doc("reward.claimed", claim_id="k\x001", reward_id="mug"), "invalid_field", "payload.claim_id"),
    (doc("reward.claimed", claim_id="k1", reward_id=7), "invalid_field", "payload.reward_id"),
    (doc("coupon.used", coupon_id="c" * 201, order_id="o1"), "invalid_field", "payload.coupon_id"),
    (doc("coupon.used", coupon_id="c1:k1", order_id="o1", amount="0.00"), "invalid_field", "payload.amount"),
    (doc("coupon.used", coupon_id="c1:k1", order_id="o1", amount="-5"), "invalid_field", "payload.amount"),
    (doc("coupon.used", coupon_id="c1:k1", order_id="o1", amount="9.999"), "invalid_field", "payload.amount"),
    (doc("coupon.used", coupon_id="c1:k1", order_id=["o1"]), "invalid_field", "payload.order_id"),
])
def test_bad_reward_events_are_rejected_with_the_field_named(document, reason, field):
    rejection = validate_document(document)
    assert isinstance(rejection, Rejection) and rejection.reason == reason
    assert rejection.detail.split(":")[0].split(" ")[0] == field


def test_a_coupon_use_above_max_amount_is_an_invalid_field():
    raw = orjson.dumps(doc("coupon.used", coupon_id="c1:k1", order_id="o1", amount="1000000.01"))
    rejection = validate_record(raw, b"c1", Policy())
    assert isinstance(rejection, Rejection) and rejection.reason == "invalid_field"
    assert "max_amount" in rejection.detail


def test_the_worker_sends_bad_reward_events_to_the_dlq_and_counts_claims_coupons_and_campaigns():
    policy = Policy.model_validate({"rewards": {"mug": {"points": 100, "coupon_value": "20.00", "valid_days": 30}}})
    metrics = LoyaltyMetrics()
    pipeline = Pipeline(policy, metrics, FoldsFrom(lambda p: PartitionFold(MemoryStore(), policy)), wall_clock_s=lambda: 2e9)

    def record(offset: int, document: dict) -> Record:
        return Record(0, offset, b"c1", orjson.dumps({**document, "event_id": f"e{offset}"}))
    out = pipeline.process([
        record(0, doc("order.paid", "2026-01-01T00:00:00Z", order_id="o1", amount="1000.00")),   # tier_upgraded
        record(1, doc("reward.claimed", "2026-01-02T00:00:00Z", claim_id="k1", reward_id="mug")),
        record(2, doc("reward.claimed", "2026-01-02T00:00:00Z", claim_id="k2", reward_id="yacht")),
        record(3, doc("coupon.used", "2026-01-03T00:00:00Z", coupon_id="c1:k1", order_id="o1")),
        record(4, doc("coupon.used", "2026-01-03T00:00:00Z", coupon_id="c1:k1", order_id="o2")),
        record(5, doc("reward.claimed", "2026-01-04T00:00:00Z", claim_id="k3", reward_id="mug")),
        record(6, doc("reward.claimed", "2026-01-04T00:00:00Z", reward_id="mug")),                  # no claim_id
        record(7, doc("clock.tick", "2026-02-10T00:00:00Z", customer=None)),                      # k3 expires
    ])
    topics = [(o.topic, orjson.loads(o.value).get("kind")) for o in out]
    assert [kind for topic, kind in topics if topic == "coupons"] == [
        "coupon_issued", "coupon_used", "coupon_issued", "coupon_expired"]
    assert [o.key for o in out if o.topic == "coupons"] == [b"c1"] * 4
    assert [orjson.loads(o.value)["reason"] for o in out if o.topic == "customer-events-dlq"] == ["missing_field"]
    text = samples(metrics.render().decode())
    assert value(text, "loyalty_reward_claims_total", outcome="accepted") == 2
    assert value(text, "loyalty_reward_claims_total", outcome="unknown_reward") == 1
    assert value(text, "loyalty_coupons_total", event="issued") == 2
    assert value(text, "loyalty_coupons_total", event="used") == 1
    assert value(text, "loyalty_coupons_total", event="expired") == 1
    assert value(text, "loyalty_coupon_uses_rejected_total", reason="already_used") == 1
    assert value(text, "loyalty_campaign_triggers_total", campaign="tier_upgraded") == 1
    # every campaign has its series from the start
    for campaign in ("win_back", "birthday", "points_expiring", "member_day"):
        assert value(text, "loyalty_campaign_triggers_total", campaign=campaign) == 0
    assert value(text, "loyalty_events_total", event_type="reward.claimed", outcome="applied") == 3
    assert ("loyalty_redemptions_rejected_total", frozenset({("reason", "unknown_reward")})) not in text


# ---- the policy ----------------------------------------------------------------------------------------

def write(tmp_path, text: str):
    path = tmp_path / "loyalty.toml"
    path.write_text(text)
    return path


def test_a_reward_catalog_and_care_campaigns_load_from_the_policy_file(tmp_path):
    policy = load_policy(write(tmp_path, """
[rewards.mug]
points = 500
coupon_value = "20.00"
min_order = "100.00"
valid_days = 30
[rewards.vip-tea]
points = 200
percent_off = 15
valid_days = 14
min_tier = "vip"
per_customer_per_year = 4
refund_points_on_expiry = true
[campaigns]
tier_upgrade_cooldown_days = 45
disabled = ["win_back"]
[campaigns.points_expiring]
remind_days = 14
min_points = 50
[campaigns.member_day]
monthly_day = 18
dates = [2026-11-11, "2026-06-18"]
statuses = ["active"]
tiers = ["premium", "vip"]
"""))
    mug, tea = policy.rewards["mug"], policy.rewards["vip-tea"]
    assert (mug.points, mug.coupon_value_minor, mug.min_order_minor, mug.valid_days) == (500, 2000, 10_000, 30)
    assert (tea.percent_off, tea.min_tier, tea.per_customer_per_year, tea.refund_points_on_expiry) == (
        15, "vip", 4, True)
    campaigns = policy.campaigns
    assert campaigns.enabled == {"birthday", "points_expiring", "tier_upgraded", "member_day"}
    assert (campaigns.tier_upgrade_cooldown_days, campaigns.points_expiring.remind_days,
            campaigns.points_expiring.min_points) == (45, 14, 50)
    assert [d.isoformat() for d in campaigns.member_day.dates] == ["2026-06-18", "2026-11-11"]
    assert (campaigns.member_day.statuses, campaigns.member_day.tiers) == (("active",), ("premium", "vip"))


def test_the_defaults_have_no_rewards_and_every_campaign_on_but_no_member_day():
    policy = Policy()
    assert policy.rewards == {}
    assert policy.campaigns.enabled == {"win_back", "birthday", "points_expiring", "tier_upgraded", "member_day"}
    assert (policy.campaigns.points_expiring.remind_days, policy.campaigns.points_expiring.min_points) == (30, 100)
    assert policy.campaigns.tier_upgrade_cooldown_days == 30
    assert not policy.campaigns.member_day.any_day
    assert policy.campaigns.member_day.statuses == ("active", "potential")


@pytest.mark.parametrize("text, where", [
    ('[rewards.mug]\npoints = 1\ncoupon_value = "1.00"\nvalid_days = 1\ncolour = "red"\n', "rewards.mug.colour"),
    ('[rewards.mug]\npoints = 0\ncoupon_value = "1.00"\nvalid_days = 1\n', "rewards.mug.points"),
    ('[rewards.mug]\npoints = 1\ncoupon_value = "1.00"\nvalid_days = 0\n', "rewards.mug.valid_days"),
    ('[rewards.mug]\npoints = 1\ncoupon_value = "1.00"\n', "rewards.mug.valid_days"),
    ('[rewards.mug]\ncoupon_value = "1.00"\nvalid_days = 1\n', "rewards.mug.points"),
    ('[rewards.mug]\npoints = 1\nvalid_days = 1\n', "rewards.mug"),
    ('[rewards.mug]\npoints = 1\ncoupon_value = "1.00"\npercent_off = 5\nvalid_days = 1\n', "rewards.mug"),
    ('[rewards.mug]\npoints = 1\ncoupon_value = "1.005"\nvalid_days = 1\n', "rewards.mug.coupon_value"),
    ('[rewards.mug]\npoints = 1\ncoupon_value = "-1"\nvalid_days = 1\n', "rewards.mug.coupon_value"),
    ('[rewards.mug]\npoints = 1\npercent_off = 101\nvalid_days = 1\n', "rewards.mug.percent_off"),
    ('[rewards.mug]\npoints = 1\npercent_off = 10\nvalid_days = 1\nmin_tier = "gold"\n', "rewards.mug.min_tier"),
    ('[rewards.mug]\npoints = 1\npercent_off = 10\nvalid_days = 1\nmin_order = "0"\n', "rewards.mug.min_order"),
    ('[rewards.mug]\npoints = 1\npercent_off = 10\nvalid_days = 1\nper_customer_per_year = 0\n',
     "rewards.mug.per_customer_per_year"),
    ('[campaigns]\ndisabled = ["newsletter"]\n', "campaigns.disabled"),
    ('[campaigns]\ntier_upgrade_cooldown_days = 0\n', "campaigns.tier_upgrade_cooldown_days"),
    ('[campaigns.points_expiring]\nremind_days = 0\n', "campaigns.points_expiring.remind_days"),
    ('[campaigns.points_expiring]\nmin_points = 0\n', "campaigns.points_expiring.min_points"),
    ('[campaigns.points_expiring]\nremind_dayz = 3\n', "campaigns.points_expiring.remind_dayz"),
    ('[campaigns.member_day]\nmonthly_day = 31\n', "campaigns.member_day.monthly_day"),
    ('[campaigns.member_day]\ndates = ["2026-02-30"]\n', "campaigns.member_day.dates"),
    ('[campaigns.member_day]\nstatuses = ["sleepy"]\n', "campaigns.member_day.statuses"),
    ('[campaigns.member_day]\ntiers = ["gold"]\n', "campaigns.member_day.tiers"),
])
def test_bad_rewards_and_campaign_settings_are_policy_errors_naming_the_key(tmp_path, text, where):
    with pytest.raises(PolicyError) as error:
        load_policy(write(tmp_path, text))
    assert f": {where}" in str(error.value), str(error.value)


def test_topics_create_makes_the_coupons_topic_with_the_input_topics_partitions():
    topics = Settings(partitions=3).topic_partitions()
    assert topics["coupons"] == topics["customer-events"] == 3
