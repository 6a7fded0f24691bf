"""Rewards and care campaigns through the real CLI, broker and worker, on a history worked out by hand.

Policy (POLICY below): mug = 500 points for 20.00 off orders from 100.00, valid 30 days; tea = 200 points
for 10% off, valid 10 days, premium or better, once a year, points back on expiry; member day on the 18th
of every month; every other setting the default (reminders 30 days before 100 points expire, tier
upgrade cooldown 30 days). Default time zone Asia/Shanghai (UTC+8). All times below are UTC.

dana
  01-05T02:00 order d-o1 1200.00, standard x1.0 -> +1200 = 1200; standard -> premium:
              "tier_upgraded:dana:2026-01-05:premium"; potential -> active
  01-06T02:00 claim k1 mug: 500 <= 1200 -> redeem -500 = 700; coupon dana:k1, expires 02-05T02:00
  01-07T02:00 claim k2 tea: premium, first this year, 200 <= 700 -> -200 = 500; dana:k2 expires 01-17T02:00
  01-08T02:00 claim k3 tea: a second tea this year -> claim_rejected limit_reached
  01-09T02:00 claim k4 yacht -> claim_rejected unknown_reward
  01-10T02:00 use dana:k1 on d-o2 with amount 80.00 < 100.00 -> coupon_rejected below_min_order
  01-10T03:00 order d-o2 150.00, premium x1.2 -> floor(180.0) = +180 = 680
  01-10T04:00 use dana:k1 on d-o2, no amount: the paid order's 150.00 >= 100.00 -> coupon_used
  01-11T02:00 use dana:k1 on d-o3 -> coupon_rejected already_used
  01-12T02:00 claim k5 mug: 500 <= 680 -> -500 = 180; dana:k5 expires 02-11T02:00
  tick 01-18T00:00: dana:k2 expired at 01-17T02:00 -> coupon_expired, points_refunded 200 and a
              coupon_refund +200 = 380; member day 2026-01-18 00:00 Shanghai = 01-17T16:00, 8 h before
              the tick (<= 3 days late), dana active and premium -> "member_day:dana:2026-01-18", balance 380
  tick 02-20T00:00: active until the last interaction (claim 01-12T02:00) + 30 d = 02-11T02:00 -> potential;
              dana:k5 expired at 02-11T02:00 -> coupon_expired, points_refunded 0 (mug);
              member day 2026-02-18 = 02-17T16:00, 2 d 8 h late -> "member_day:dana:2026-02-18"
  02-21T02:00 adjust +500 = 880
  02-21T03:00 claim k6 mug: -500 = 380; dana:k6 expires 2026-03-23T03:00, open at the end; a purchase in
              365 days and an interaction now -> potential -> active
  => 380 points, premium, active; ledger 1200 - 500 - 200 + 180 - 500 + 200 + 500 - 500 = 380 (8 entries)

eli
  01-05T03:00 registered (potential); 01-06T03:00 adjust +300 = 300
  01-07T03:00 claim e1 tea -> claim_rejected tier_too_low (standard)
  01-08T03:00 claim e2 mug -> claim_rejected insufficient_points (300 < 500)
  01-09T03:00 use dana:k1 -> coupon_rejected unknown_coupon (not eli's)
  member days 2026-01-18 and 2026-02-18, potential both times -> two member_day triggers
  => 300 points, standard, potential

No points expire before 2027, nobody becomes dormant: no reminder, no win-back, no birthday.
"""
from __future__ import annotations

import orjson
import pytest

from tests.fixtures.kafka import wait_for
from tests.support.events import event_line
from tests.support.promtext import samples, scrape, series, value
from tests.support.topics import read_topic, record_count

pytestmark = pytest.mark.broker

POLICY = """
[rewards.mug]
points = 500
coupon_value = "20.00"
min_order = "100.00"
valid_days = 30

[rewards.tea]
points = 200
percent_off = 10
valid_days = 10
min_tier = "premium"
per_customer_per_year = 1
refund_points_on_expiry = true

[campaigns.member_day]
monthly_day = 18
"""


def _event(event_id: str, event_type: str, customer_id, at: str, **payload) -> bytes:
    """A JSON line at 2026-{at}:00Z."""
    return event_line(event_id, event_type, customer_id, f"2026-{at}:00Z", **payload)


LINES = [
    _event("d1", "order.paid", "dana", "01-05T02:00", order_id="d-o1", amount="1200.00"),
    _event("d2", "reward.claimed", "dana", "01-06T02:00", claim_id="k1", reward_id="mug"),
    _event("d3", "reward.claimed", "dana", "01-07T02:00", claim_id="k2", reward_id="tea"),
    _event("d4", "reward.claimed", "dana", "01-08T02:00", claim_id="k3", reward_id="tea"),
    _event("d5", "reward.claimed", "dana", "01-09T02:00", claim_id="k4", reward_id="yacht"),
    _event("d6", "coupon.used", "dana", "01-10T02:00", coupon_id="dana:k1", order_id="d-o2", amount="80.00"),
    _event("d7", "order.paid", "dana", "01-10T03:00", order_id="d-o2", amount="150.00"),
    _event("d8", "coupon.used", "dana", "01-10T04:00", coupon_id="dana:k1", order_id="d-o2"),
    _event("d9", "coupon.used", "dana", "01-11T02:00", coupon_id="dana:k1", order_id="d-o3", amount="300.00"),
    _event("d10", "reward.claimed", "dana", "01-12T02:00", claim_id="k5", reward_id="mug"),
    _event("e1", "customer.registered", "eli", "01-05T03:00"),
    _event("e2", "points.adjusted", "eli", "01-06T03:00", points=300, reason="welcome"),
    _event("e3", "reward.claimed", "eli", "01-07T03:00", claim_id="e1", reward_id="tea"),
    _event("e4", "reward.claimed", "eli", "01-08T03:00", claim_id="e2", reward_id="mug"),
    _event("e5", "coupon.used", "eli", "01-09T03:00", coupon_id="dana:k1", order_id="e-o1", amount="500.00"),
    _event("t1", "clock.tick", None, "01-18T00:00"),
    _event("t2", "clock.tick", None, "02-20T00:00"),
    _event("d11", "points.adjusted", "dana", "02-21T02:00", points=500, reason="goodwill"),
    _event("d12", "reward.claimed", "dana", "02-21T03:00", claim_id="k6", reward_id="mug"),
]
EVENTS_APPLIED = 17  # 12 (dana) + 5 (eli); ticks are not events

EXPECTED_COUPONS = [  # (coupon_id, kind, at, points_refunded)
    ("dana:k1", "coupon_issued", "2026-01-06T02:00:00Z", None),
    ("dana:k2", "coupon_issued", "2026-01-07T02:00:00Z", None),
    ("dana:k1", "coupon_used", "2026-01-10T04:00:00Z", None),
    ("dana:k5", "coupon_issued", "2026-01-12T02:00:00Z", None),
    ("dana:k2", "coupon_expired", "2026-01-17T02:00:00Z", 200),
    ("dana:k5", "coupon_expired", "2026-02-11T02:00:00Z", 0),
    ("dana:k6", "coupon_issued", "2026-02-21T03:00:00Z", None),
]
EXPECTED_REJECTIONS = {  # (customer, kind, id, reason)
    ("dana", "claim_rejected", "k3", "limit_reached"),
    ("dana", "claim_rejected", "k4", "unknown_reward"),
    ("dana", "coupon_rejected", "dana:k1", "below_min_order"),
    ("dana", "coupon_rejected", "dana:k1", "already_used"),
    ("eli", "claim_rejected", "e1", "tier_too_low"),
    ("eli", "claim_rejected", "e2", "insufficient_points"),
    ("eli", "coupon_rejected", "dana:k1", "unknown_coupon"),
}
EXPECTED_TRIGGERS = {  # trigger_id -> (at, points_balance)
    "tier_upgraded:dana:2026-01-05:premium": ("2026-01-05T02:00:00Z", 1200),
    "member_day:dana:2026-01-18": ("2026-01-17T16:00:00Z", 380),
    "member_day:eli:2026-01-18": ("2026-01-17T16:00:00Z", 300),
    "member_day:dana:2026-02-18": ("2026-02-17T16:00:00Z", 380),
    "member_day:eli:2026-02-18": ("2026-02-17T16:00:00Z", 300),
}
EXPECTED_LEDGER = [("earn", 1200, None), ("redeem", -500, "k1"), ("redeem", -200, "k2"), ("earn", 180, None),
                   ("redeem", -500, "k5"), ("coupon_refund", 200, "k2"), ("adjust", 500, None),
                   ("redeem", -500, "k6")]


@pytest.fixture(scope="module")
def run(module_cluster):
    """Start a worker with the policy (event clock), send the history with `loyalty produce FILE`, wait."""
    cluster = module_cluster
    policy = cluster.workdir / "rewards.toml"
    policy.write_text(POLICY)
    worker = cluster.worker(extra_env={"LOYALTY_POLICY": str(policy)})
    path = cluster.workdir / "rewards.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    result = cluster.loyalty("produce", str(path))
    assert result.returncode == 0, result.stderr.decode()
    broker = cluster.settings.broker
    wait_for(lambda: worker.stats()["events_applied"] >= EVENTS_APPLIED, 120, "the history to be applied")
    for topic, count in (("coupons", len(EXPECTED_COUPONS)), ("campaign-triggers", len(EXPECTED_TRIGGERS))):
        wait_for(lambda: record_count(broker, topic) >= count, 60, f"{count} records in {topic}")
    return cluster, worker, policy


def query_json(run, *args: str) -> dict:
    cluster, worker, _ = run
    result = cluster.loyalty("query", *args, "--url", worker.url, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return orjson.loads(result.stdout)


def test_the_customers_end_as_worked_out(run):
    dana = query_json(run, "customer", "dana")
    assert (dana["points_balance"], dana["tier"], dana["status"]) == (380, "premium", "active")
    # only dana:k6 is open: k1 used, k2 and k5 expired
    assert dana["coupons"] == [{"coupon_id": "dana:k6", "reward_id": "mug", "expires_at": "2026-03-23T03:00:00Z",
                                "coupon_value": "20.00", "percent_off": None, "min_order": "100.00"}]
    eli = query_json(run, "customer", "eli")
    assert (eli["points_balance"], eli["tier"], eli["status"], eli["coupons"]) == (300, "standard", "potential", [])
    cluster, worker, _ = run
    human = cluster.loyalty("query", "customer", "dana", "--url", worker.url)
    assert ("coupon     dana:k6 (mug): 20.00 off orders from 100.00, expires 2026-03-23T03:00:00Z"
            in human.stdout.decode().splitlines())


def test_the_coupons_topic_has_each_coupon_record_once_on_the_customers_partition(run):
    cluster, _, _ = run
    messages = read_topic(cluster.settings.broker, "coupons")
    records = [m.json() for m in messages]  # one customer's records are in their order
    assert [(r["coupon_id"], r["kind"], r["at"], r.get("points_refunded")) for r in records] == EXPECTED_COUPONS
    assert {m.key for m in messages} == {b"dana"}
    ledger_partition = {m.partition for m in read_topic(cluster.settings.broker, "loyalty-ledger")
                        if m.key == b"dana"}
    assert {m.partition for m in messages} == ledger_partition


def test_the_ledger_shows_the_claims_and_the_refund(run):
    cluster, _, _ = run
    entries = [m.json() for m in read_topic(cluster.settings.broker, "loyalty-ledger") if m.key == b"dana"]
    assert [(e["kind"], e["points"], e.get("claim_id")) for e in entries] == EXPECTED_LEDGER
    # points taken by claims = the claims' entries: 500 + 200 + 500 + 500 = 1700
    assert -sum(e["points"] for e in entries if e["kind"] == "redeem" and e.get("claim_id")) == 1700


def test_every_rejection_is_on_customer_updates_with_its_reason(run):
    cluster, _, _ = run
    records = [m.json() for m in read_topic(cluster.settings.broker, "customer-updates")]
    rejections = {(r["customer_id"], r["kind"], r.get("claim_id") or r.get("coupon_id"), r["reason"])
                  for r in records if r["kind"] in ("claim_rejected", "coupon_rejected")}
    assert rejections == EXPECTED_REJECTIONS
    assert len([r for r in records if r["kind"] in ("claim_rejected", "coupon_rejected")]) == 7


def test_the_campaign_triggers_are_exactly_the_worked_out_ones(run):
    cluster, _, _ = run
    records = [m.json() for m in read_topic(cluster.settings.broker, "campaign-triggers")]
    assert {r["trigger_id"]: (r["at"], r["points_balance"]) for r in records} == EXPECTED_TRIGGERS
    assert len(records) == len(EXPECTED_TRIGGERS)


def test_metrics_count_claims_coupons_and_each_campaign(run):
    _, worker, _ = run
    metrics = samples(scrape(worker.url))
    assert series(metrics, "loyalty_reward_claims_total", "outcome") == {
        "accepted": 4, "limit_reached": 1, "unknown_reward": 1, "tier_too_low": 1, "insufficient_points": 1}
    assert series(metrics, "loyalty_coupons_total", "event") == {"issued": 4, "used": 1, "expired": 2}
    assert series(metrics, "loyalty_coupon_uses_rejected_total", "reason") == {
        "below_min_order": 1, "already_used": 1, "unknown_coupon": 1}
    assert series(metrics, "loyalty_campaign_triggers_total", "campaign") == {
        "win_back": 0, "birthday": 0, "points_expiring": 0, "tier_upgraded": 1, "member_day": 4}
    assert value(metrics, "loyalty_points_total", kind="coupon_refund") == 200


def test_replay_verifies_and_reports_per_campaign_what_another_policy_would_change(run):
    cluster, _, policy = run
    env = {"LOYALTY_POLICY": str(policy)}
    verify = cluster.loyalty("replay", "--verify", env=env)
    assert verify.returncode == 0, verify.stderr.decode()
    other = cluster.workdir / "no-member-day.toml"
    other.write_text(POLICY + '\n[campaigns]\ndisabled = ["member_day"]\n')
    result = cluster.loyalty("replay", "--policy", str(other), "--json", env=env)
    assert result.returncode == 0, result.stderr.decode()
    by_campaign = orjson.loads(result.stdout)["what_if"]["campaigns"]["by_campaign"]
    assert by_campaign["member_day"] == {"before": 4, "after": 0, "no_longer_fired": 4, "newly_fired": 0}
    assert by_campaign["tier_upgraded"] == {"before": 1, "after": 1, "no_longer_fired": 0, "newly_fired": 0}


def test_loyalty_schema_describes_the_reward_events(run):
    cluster, _, _ = run
    result = cluster.loyalty("schema")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    for name in ('"reward.claimed"', '"coupon.used"', '"claim_id"', '"reward_id"', '"coupon_id"'):
        assert name in text


def test_a_bad_reward_in_the_policy_stops_the_worker_with_a_short_message(run):
    cluster, _, _ = run
    bad = cluster.workdir / "bad-rewards.toml"
    bad.write_text('[rewards.mug]\npoints = 500\ncoupon_value = "20.00"\npercent_off = 10\nvalid_days = 30\n')
    result = cluster.loyalty("worker", "--policy", str(bad), "--clock", "event", timeout_s=60)
    assert result.returncode == 2
    assert b"rewards.mug" in result.stderr and b"Traceback" not in result.stderr
