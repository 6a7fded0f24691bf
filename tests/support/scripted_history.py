"""A scripted JSON-lines history with outcomes worked out by hand from docs/rules.md.

Shared by tests/e2e/test_cli_scripted.py and tests/integration/test_prometheus.py. Every expected value
below is a literal with its arithmetic in a comment; none is computed with the project's code.

Customers (default time zone Asia/Shanghai, UTC+8; lots expire 365 days after the credit; 2025 and
2026 are not leap years, so "+365 days" is the same date one year later):

alice  (America/New_York, birthday 1990-07-20)
  2025-01-05 registered
  2025-01-10 order o-a1 800.00  standard x1.0 -> +800   spend 800.00   (potential -> active)
  2025-02-01 order o-a2 450.50  standard x1.0 -> +450   spend 1250.50  standard -> premium
  2025-03-01 order o-a3 4000.00 premium  x1.2 -> +4800  spend 5250.50  premium -> vip
  (no interaction for 30 days: 2025-03-01T10 + 30 d = 2025-03-31T10 -> potential, March has 31 days)
  2025-04-01 order o-a4 100.99  vip      x1.5 -> floor(151.485) = +151   spend 5351.49  (potential -> active)
  2025-04-05 refund o-a3 1000.00 -> floor(4800 * 1000.00 / 4000.00) = -1200; spend 4351.49: vip -> premium
  2025-04-06 review o-a1 -> +10
  2025-05-01 redemption r-a1 3000 -> accepted, -3000
  balance 800 + 450 + 4800 + 151 - 1200 + 10 - 3000 = 5011 - 3000 = 2011
  lots (oldest first): 800@2026-01-10, 450@2026-02-01, 4800@2026-03-01, 151@2026-04-01, 10@2026-04-06
    reversal 1200 takes 800 + 400 -> 50@02-01 left; redemption 3000 takes 50 + 2950 -> 1850@03-01 left
    => 1850@2026-03-01T10, 151@2026-04-01T10, 10@2026-04-06T10
  status: active until last interaction (2025-05-01T10) + 30 d = 2025-05-31T10 -> potential;
          + 180 d = 2025-10-28T10 -> dormant, win-back "win_back:alice:2025-10-28"
  birthday 2025-07-20 00:00 New York (EDT, -4) = 2025-07-20T04:00Z; the tick at 2025-07-21T00:00Z is
          20 h later (<= 3 days grace) -> "birthday:alice:2025" at 2025-07-20T04:00:00Z
  tick 2026-03-11: lot 1850@2026-03-01T10 expires -> balance 2011 - 1850 = 161;
          o-a1 leaves the window 2026-01-10 (4351.49 - 800.00 = 3551.49 premium), o-a2 2026-02-01
          (3551.49 - 450.50 = 3100.99 premium), o-a3 2026-03-01 (3100.99 - 3000.00 = 100.99): premium -> standard
  tier_upgraded (default cooldown 30 days; period = UTC date and tier): standard -> premium on 2025-02-01
          ("tier_upgraded:alice:2025-02-01:premium"), premium -> vip on 2025-03-01 ("...:2025-03-01:vip");
          the falls (vip -> premium by refund, premium -> standard by time) congratulate nobody
  points_expiring (30 days before a New York date on which >= 100 points expire): alice is alone on her
          partition (murmur2 "alice" % 4 = 1), so her clock jumps from 2025-07-21 to 2026-03-11.
          The 1850 points of 2026-03-01 (reminder due 2026-01-30 00:00 EST = 05:00Z) had expired by then
          (2026-03-01T10:00Z < 2026-03-11): no stale reminder. The 151 of 2026-04-01 (06:00 EDT) are
          reminded at 2026-03-02 00:00 EST = 2026-03-02T05:00Z -> "points_expiring:alice:2026-04-01" (151
          points, balance 161 by then); the 10 of 2026-04-06 are fewer than 100: no reminder
  events 8; ledger 4 earn + reverse + bonus + redeem + expire = 8 entries

bob    (no birthday, default time zone Asia/Shanghai)
  2025-06-01T01:00Z registered
  2025-06-01T15:00Z check-in (local 06-01 23:00) +5
  2025-06-01T15:30Z check-in (local 06-01 23:30) +0, one a local day
  2025-06-01T16:30Z check-in (local 06-02 00:30, a new local day) +5
  2025-06-02T02..05Z four shares on local 06-02: +2 +2 +2 +0 (max 3 a day)
  2025-06-03 order o-b1 300.00 -> +300 (potential -> active)
  2025-06-04 order o-b2 199.99 -> floor(199.99) = +199
  2025-06-05 refund o-b2 50.00 -> floor(199 * 50.00 / 199.99) = floor(49.75..) = -49
  2025-06-06 review o-b1 +10, a second review of o-b1 +0
  the order o-b1 event again (same event_id): duplicate
  2025-06-07 redemption r-b1 200 -> accepted, -200
  2025-06-08 redemption r-b2 10000 -> rejected (insufficient_points, balance 276)
  2025-06-09 points.adjusted -20
  balance 5 + 5 + 6 + 300 + 199 - 49 + 10 - 200 - 20 = 256
  lots: 5, 5, 2, 2, 2, 300@06-03, 199@06-04; reversal 49 takes 16 + 33 -> 267@06-03; +10@06-06;
        redemption 200 -> 67@06-03; adjust -20 -> 47@06-03  => 47, 199, 10 (sum 256)
  spend 300.00 + 199.99 - 50.00 = 449.99 (standard throughout)
  status: last interaction 2025-06-08T02 (adjustments are no interaction): + 30 d = 2025-07-08T02 potential;
          + 180 d = 2025-12-05T02 dormant -> "win_back:bob:2025-12-05"
  events 1 + 3 + 4 + 2 + 1 + 2 + 2 + 1 = 16; ledger entries 2 + 3 + 2 + 1 + 1 + 1 + 1 = 11

carol  (birthday 1995-03-10, default time zone Asia/Shanghai)
  2026-01-01T02:00Z registered (her 2025 birthday is long past: skipped, never fired)
  2026-03-01T02:00Z order o-c1 1200.00 standard x1.0 -> +1200; standard -> premium; potential -> active;
          "tier_upgraded:carol:2026-03-01:premium"
  tick 2026-03-11T00:00Z: 2026-03-10 00:00 Shanghai = 2026-03-09T16:00Z, 32 h late (<= 3 days) ->
          "birthday:carol:2026" at 2026-03-09T16:00:00Z
  2026-03-12T01:00Z check-in +5
  balance 1205, premium, active, spend 1200.00; events 3; ledger 2 entries

Value (R: whole days since the last purchase, 5 up to 30, 4 up to 90, 3 up to 180, 2 up to 365, so R falls
at last purchase + 31, 91, 181 and 366 days; F: orders in the window not fully refunded, 2 -> 2, 3 -> 3;
M: net spend in the window, 300.00 -> 2, 1000.00 -> 3, 5000.00 -> 4; high: R >= 4 and F + M >= 8; low: R <= 2)
  alice  o-a1: R5 F1 M2 (800.00) medium (none -> medium 2025-01-10T10:00Z); o-a2: F2 M3 (1250.50); o-a3: F3 M4
         (5250.50), F + M = 7: still medium; 2025-04-01T10 = o-a3 + 31 d: R4, then o-a4 the same instant: R5,
         4 orders F3, M4 (5351.49); refund: M3 (4351.49). From o-a4 (2025-04-01T10): R4 2025-05-02, R3
         2025-07-01, R2 2025-09-29T10:00Z -> low (applied by the tick of 2026-03-11). Dormant 2025-10-28 as a
         premium, low customer. Orders leave the window: 2026-03-11 has o-a4 only: F1, M1 (100.99); 343 whole
         days since 2025-04-01T10: R2 -> {r 2, f 1, m 1}, low
  bob    o-b1: R5 F1 M2 (300.00) medium (none -> medium 2025-06-03T02:00Z); o-b2: F2, M2 (499.99, 449.99 after
         the refund). From o-b2 (2025-06-04T02): R4 2025-07-05, R3 2025-09-03, R2 2025-12-02T02:00Z -> low.
         Dormant 2025-12-05 as a standard, low customer. At 2026-03-11: 279 whole days: {r 2, f 2, m 2}, low
  carol  o-c1 1200.00: R5 F1 M3, medium (none -> medium 2026-03-01T02:00Z); 11 days later: {r 5, f 1, m 3}
  churn (became dormant, by tier and value just before): premium/low 1 (alice), standard/low 1 (bob)

Totals: 3 customers; active 1 (carol), potential 0, dormant 2 (alice, bob); standard 2, premium 1, vip 0;
value high 0, medium 1 (carol), low 2 (alice, bob), none 0;
points outstanding 161 + 256 + 1205 = 1622; events applied 8 + 16 + 3 = 27 (ticks and the duplicate not counted).
"""
from __future__ import annotations

from schemas.policy import Policy
from schemas.policy_doc import policy_version
from tests.support.events import event_line as _event


def _tick(event_id: str, at: str) -> bytes:
    return _event(event_id, "clock.tick", None, at)


_BOB_ORDER_1 = _event("b-o1", "order.paid", "bob", "2025-06-03T02:00:00Z", order_id="o-b1", amount="300.00")

LINES: list[bytes] = [
    # alice
    _event("a-reg", "customer.registered", "alice", "2025-01-05T10:00:00Z",
           birthday="1990-07-20", timezone="America/New_York"),
    _event("a-o1", "order.paid", "alice", "2025-01-10T10:00:00Z", order_id="o-a1", amount="800.00"),
    _event("a-o2", "order.paid", "alice", "2025-02-01T10:00:00Z", order_id="o-a2", amount="450.50"),
    _event("a-o3", "order.paid", "alice", "2025-03-01T10:00:00Z", order_id="o-a3", amount=4000),
    _event("a-o4", "order.paid", "alice", "2025-04-01T10:00:00Z", order_id="o-a4", amount="100.99",
           currency="CNY"),
    _event("a-ref", "order.refunded", "alice", "2025-04-05T10:00:00Z", order_id="o-a3", amount="1000.00"),
    _event("a-rev", "review.posted", "alice", "2025-04-06T10:00:00Z", order_id="o-a1", rating=5),
    _event("a-red1", "redemption.requested", "alice", "2025-05-01T10:00:00Z", redemption_id="r-a1",
           points=3000, reward="voucher"),
    # bob
    _event("b-reg", "customer.registered", "bob", "2025-06-01T01:00:00Z"),
    _event("b-ci1", "customer.checked_in", "bob", "2025-06-01T15:00:00Z"),
    _event("b-ci2", "customer.checked_in", "bob", "2025-06-01T15:30:00Z"),
    _event("b-ci3", "customer.checked_in", "bob", "2025-06-01T16:30:00Z"),
    _event("b-sh1", "content.shared", "bob", "2025-06-02T02:00:00Z", channel="wechat"),
    _event("b-sh2", "content.shared", "bob", "2025-06-02T03:00:00Z", channel="weibo"),
    _event("b-sh3", "content.shared", "bob", "2025-06-02T04:00:00Z"),
    _event("b-sh4", "content.shared", "bob", "2025-06-02T05:00:00Z"),
    _BOB_ORDER_1,
    _event("b-o2", "order.paid", "bob", "2025-06-04T02:00:00Z", order_id="o-b2", amount="199.99"),
    _event("b-ref", "order.refunded", "bob", "2025-06-05T02:00:00Z", order_id="o-b2", amount="50.00"),
    _event("b-rev1", "review.posted", "bob", "2025-06-06T02:00:00Z", order_id="o-b1", rating=4),
    _event("b-rev2", "review.posted", "bob", "2025-06-06T03:00:00Z", order_id="o-b1", rating=5),
    _BOB_ORDER_1,  # the same event again: a duplicate
    _event("b-red1", "redemption.requested", "bob", "2025-06-07T02:00:00Z", redemption_id="r-b1", points=200),
    _event("b-red2", "redemption.requested", "bob", "2025-06-08T02:00:00Z", redemption_id="r-b2", points=10000),
    _event("b-adj", "points.adjusted", "bob", "2025-06-09T02:00:00Z", points=-20, reason="correction"),
    # a tick a few weeks later: alice's birthday, both become potential
    _tick("tick-2025-07-21", "2025-07-21T00:00:00Z"),
    # carol, months later
    _event("c-reg", "customer.registered", "carol", "2026-01-01T02:00:00Z", birthday="1995-03-10"),
    _event("c-o1", "order.paid", "carol", "2026-03-01T02:00:00Z", order_id="o-c1", amount="1200.00"),
    # a tick months after alice's and bob's last events: expiry, tier and status changes, win-backs, a birthday
    _tick("tick-2026-03-11", "2026-03-11T00:00:00Z"),
    _event("c-ci", "customer.checked_in", "carol", "2026-03-12T01:00:00Z"),
]

EVENTS_APPLIED = 27  # 8 (alice) + 16 (bob) + 3 (carol)

EXPECTED_CUSTOMERS = {
    "alice": {
        "points_balance": 161, "tier": "standard", "status": "dormant",
        "spend_12m": "100.99",           # only o-a4 is inside 365 days of 2026-03-11
        "lifetime_spend": "4351.49",     # 800.00 + 450.50 + 4000.00 + 100.99 - 1000.00
        "last_purchase_at": "2025-04-01T10:00:00Z", "last_interaction_at": "2025-05-01T10:00:00Z",
        "birthday": "1990-07-20", "timezone": "America/New_York",
        "points_expiring": [{"points": 151, "expires_at": "2026-04-01T10:00:00Z"},
                            {"points": 10, "expires_at": "2026-04-06T10:00:00Z"}],
        "events_applied": 8,
        "rfm": {"r": 2, "f": 1, "m": 1}, "value": "low",  # see "Value" above
    },
    "bob": {
        "points_balance": 256, "tier": "standard", "status": "dormant",
        "spend_12m": "449.99", "lifetime_spend": "449.99",
        "last_purchase_at": "2025-06-04T02:00:00Z", "last_interaction_at": "2025-06-08T02:00:00Z",
        "birthday": None, "timezone": None,
        "points_expiring": [{"points": 47, "expires_at": "2026-06-03T02:00:00Z"},
                            {"points": 199, "expires_at": "2026-06-04T02:00:00Z"},
                            {"points": 10, "expires_at": "2026-06-06T02:00:00Z"}],
        "events_applied": 16,
        "rfm": {"r": 2, "f": 2, "m": 2}, "value": "low",
    },
    "carol": {
        "points_balance": 1205, "tier": "premium", "status": "active",
        "spend_12m": "1200.00", "lifetime_spend": "1200.00",
        "last_purchase_at": "2026-03-01T02:00:00Z", "last_interaction_at": "2026-03-12T01:00:00Z",
        "birthday": "1995-03-10", "timezone": None,
        "points_expiring": [{"points": 1200, "expires_at": "2027-03-01T02:00:00Z"},
                            {"points": 5, "expires_at": "2027-03-12T01:00:00Z"}],
        "events_applied": 3,
        "rfm": {"r": 5, "f": 1, "m": 3}, "value": "medium",
    },
}

EXPECTED_STATS = {
    "customers": 3,
    "by_status": {"active": 1, "potential": 0, "dormant": 2},
    "by_tier": {"standard": 2, "premium": 1, "vip": 0},
    "by_value": {"high": 0, "medium": 1, "low": 2, "none": 0},
    "points_outstanding": 1622,  # 161 + 256 + 1205
    "events_applied": EVENTS_APPLIED,
    "policy_versions": [policy_version(Policy())],  # no policy.changed: the built-in default everywhere
}

# Ledger entries (customer -> [(kind, points)] in order).
EXPECTED_LEDGER = {
    "alice": [("earn", 800), ("earn", 450), ("earn", 4800), ("earn", 151), ("reverse", -1200),
              ("bonus", 10), ("redeem", -3000), ("expire", -1850)],
    "bob": [("bonus", 5), ("bonus", 5), ("bonus", 2), ("bonus", 2), ("bonus", 2), ("earn", 300),
            ("earn", 199), ("reverse", -49), ("bonus", 10), ("redeem", -200), ("adjust", -20)],
    "carol": [("earn", 1200), ("bonus", 5)],
}
LEDGER_COUNT = 21  # 8 + 11 + 2

# customer-updates: (customer, kind, from, to, at)
EXPECTED_UPDATES = [
    ("alice", "status_changed", "potential", "active", "2025-01-10T10:00:00Z"),
    ("alice", "tier_changed", "standard", "premium", "2025-02-01T10:00:00Z"),
    ("alice", "tier_changed", "premium", "vip", "2025-03-01T10:00:00Z"),
    ("alice", "status_changed", "active", "potential", "2025-03-31T10:00:00Z"),   # 2025-03-01 + 30 d
    ("alice", "status_changed", "potential", "active", "2025-04-01T10:00:00Z"),   # order o-a4
    ("alice", "tier_changed", "vip", "premium", "2025-04-05T10:00:00Z"),
    ("alice", "status_changed", "active", "potential", "2025-05-31T10:00:00Z"),   # 2025-05-01 + 30 d
    ("alice", "status_changed", "potential", "dormant", "2025-10-28T10:00:00Z"),  # 2025-05-01 + 180 d
    ("alice", "tier_changed", "premium", "standard", "2026-03-01T10:00:00Z"),     # o-a3 leaves the window
    ("bob", "status_changed", "potential", "active", "2025-06-03T02:00:00Z"),
    ("bob", "status_changed", "active", "potential", "2025-07-08T02:00:00Z"),     # 2025-06-08 + 30 d
    ("bob", "status_changed", "potential", "dormant", "2025-12-05T02:00:00Z"),    # 2025-06-08 + 180 d
    ("carol", "tier_changed", "standard", "premium", "2026-03-01T02:00:00Z"),
    ("carol", "status_changed", "potential", "active", "2026-03-01T02:00:00Z"),
    ("alice", "value_changed", "none", "medium", "2025-01-10T10:00:00Z"),     # o-a1
    ("alice", "value_changed", "medium", "low", "2025-09-29T10:00:00Z"),      # 2025-04-01 + 181 d: R2
    ("bob", "value_changed", "none", "medium", "2025-06-03T02:00:00Z"),       # o-b1
    ("bob", "value_changed", "medium", "low", "2025-12-02T02:00:00Z"),        # 2025-06-04 + 181 d: R2
    ("carol", "value_changed", "none", "medium", "2026-03-01T02:00:00Z"),     # o-c1
]
EXPECTED_REJECTIONS = [("bob", "r-b2", 10000, "insufficient_points", "2025-06-08T02:00:00Z", "b-red2")]
UPDATES_COUNT = 20  # 14 tier and status changes + 5 value changes + 1 rejection

# campaign-triggers: trigger_id -> (campaign, customer, at)
EXPECTED_TRIGGERS = {
    "win_back:alice:2025-10-28": ("win_back", "alice", "2025-10-28T10:00:00Z"),
    "win_back:bob:2025-12-05": ("win_back", "bob", "2025-12-05T02:00:00Z"),
    "birthday:alice:2025": ("birthday", "alice", "2025-07-20T04:00:00Z"),
    "birthday:carol:2026": ("birthday", "carol", "2026-03-09T16:00:00Z"),
    "tier_upgraded:alice:2025-02-01:premium": ("tier_upgraded", "alice", "2025-02-01T10:00:00Z"),
    "tier_upgraded:alice:2025-03-01:vip": ("tier_upgraded", "alice", "2025-03-01T10:00:00Z"),
    "tier_upgraded:carol:2026-03-01:premium": ("tier_upgraded", "carol", "2026-03-01T02:00:00Z"),
    "points_expiring:alice:2026-04-01": ("points_expiring", "alice", "2026-03-02T05:00:00Z"),
}


def write_history(path) -> None:
    """Write the history as a JSON-lines file."""
    path.write_bytes(b"\n".join(LINES) + b"\n")


def run_history(cluster):
    """Start a worker (event clock), send the history with `loyalty produce FILE`, wait until it is all folded.

    Return the worker.
    """
    from tests.support.topics import record_count
    from tests.fixtures.kafka import wait_for

    worker = cluster.worker()
    path = cluster.workdir / "history.jsonl"
    write_history(path)
    result = cluster.loyalty("produce", str(path))
    assert result.returncode == 0, result.stderr.decode()
    assert f"sent {len(LINES)} events".encode() in result.stderr
    broker = cluster.settings.broker
    wait_for(lambda: worker.stats()["events_applied"] >= EVENTS_APPLIED, 120, "the history to be applied")
    # Ticks on other partitions may still be in flight: wait for every expected output record.
    for topic, count in (("loyalty-ledger", LEDGER_COUNT), ("customer-updates", UPDATES_COUNT),
                         ("campaign-triggers", len(EXPECTED_TRIGGERS))):
        wait_for(lambda: record_count(broker, topic) >= count, 60, f"{count} records in {topic}")
    wait_for(lambda: worker.stats() == EXPECTED_STATS, 30, "the expected stats")
    return worker
