"""`loyalty explain` through the real CLI, broker and worker, and offline on a replay store.

A hand-computed history of one customer (default time zone Asia/Shanghai, UTC+8; 2026 is no leap year):

  2026-01-01T02:00Z registered, birthday 03-14
  2026-01-01T02:00Z order o1 1288.00, standard x1.0 -> +1288 points; spend 1288.00: premium; potential -> active
  2026-01-21T02:00Z order o2 4000.00, premium x1.2 -> +4800; spend 5288.00: vip
  2026-01-22T02:00Z refund o2 100.00 -> floor(4800 * 100.00 / 4000.00) = -120; spend 5188.00: still vip
  2026-01-23T02:00Z redemption r1 200 -> -200
  2026-02-10T02:00Z clock.tick (to every partition): nothing falls due for c1

Then, as of the tick (2026-02-10T02:00Z):
  points   1288 + 4800 - 120 - 200 = 5768; the reversal and the redemption take the oldest lot:
           1288 - 120 - 200 = 968 left, expiring 2026-01-01 + 365 d = 2027-01-01T02:00Z; 4800 expiring 2027-01-21
  tier     vip: o1 net 1288.00 + o2 net 4000.00 - 100.00 = 3900.00 -> 5188.00 >= 5000.00;
           o1 leaves the window 2027-01-01: 3900.00, premium; o2 leaves 2027-01-21: 0.00, standard
  status   active: last purchase 2026-01-21 (20 whole days before the tick), last interaction (the redemption)
           2026-01-23 (18 days); potential at 01-23 + 30 d = 2026-02-22, dormant at 01-23 + 180 d = 2026-07-22
  value    R 5 (20 days <= 30), F 2 (two orders, o2 only partly refunded), M 4 (5188.00 >= 5000.00): F + M = 6 < 8,
           medium. R 4 from 01-21 + 31 d, R 3 from + 91 d: still medium; R 2 from 01-21 + 181 d = 2026-07-21: low
  campaigns no win-back yet: one would fire on becoming dormant, 2026-07-22; birthday 2026-03-14 00:00 +08:00 =
           2026-03-13T16:00Z, trigger birthday:c1:2026
"""
from __future__ import annotations

import orjson
import pytest

from tests.fixtures.kafka import wait_for

pytestmark = pytest.mark.broker

LINES = [orjson.dumps(doc) for doc in (
    {"event_id": "x-reg", "event_type": "customer.registered", "customer_id": "c1",
     "occurred_at": "2026-01-01T10:00:00+08:00", "payload": {"birthday": "03-14"}},
    {"event_id": "x-o1", "event_type": "order.paid", "customer_id": "c1", "occurred_at": "2026-01-01T02:00:00Z",
     "payload": {"order_id": "o1", "amount": "1288.00"}},
    {"event_id": "x-o2", "event_type": "order.paid", "customer_id": "c1", "occurred_at": "2026-01-21T02:00:00Z",
     "payload": {"order_id": "o2", "amount": "4000.00"}},
    {"event_id": "x-ref", "event_type": "order.refunded", "customer_id": "c1", "occurred_at": "2026-01-22T02:00:00Z",
     "payload": {"order_id": "o2", "amount": "100.00"}},
    {"event_id": "x-red", "event_type": "redemption.requested", "customer_id": "c1",
     "occurred_at": "2026-01-23T02:00:00Z", "payload": {"redemption_id": "r1", "points": 200}},
    {"event_id": "x-tick", "event_type": "clock.tick", "customer_id": None, "occurred_at": "2026-02-10T02:00:00Z"},
)]


@pytest.fixture(scope="module")
def run(module_cluster):
    """Send the history to a worker on the event clock and wait until it is folded, ticks included."""
    cluster = module_cluster
    worker = cluster.worker()
    cluster.produce_lines(LINES)
    wait_for(lambda: worker.stats()["events_applied"] == 5, 60, "the 5 events to be applied")
    wait_for(lambda: worker.get("/customers/c1/explain")["as_of"] == "2026-02-10T02:00:00Z", 30, "the tick")
    return cluster, worker


def explain_json(run, *args: str) -> dict:
    cluster, worker = run
    result = cluster.loyalty("explain", "c1", "--json", "--url", worker.url, *args)
    assert result.returncode == 0, result.stderr.decode()
    return orjson.loads(result.stdout)


def test_explain_json_has_the_hand_computed_numbers(run):
    why = explain_json(run)
    assert why["as_of"] == "2026-02-10T02:00:00Z"
    tier = why["tier"]
    assert (tier["tier"], tier["spend_12m"]) == ("vip", "5188.00")
    assert [(o["order_id"], o["net"], o["leaves_window_at"]) for o in tier["orders"]] == [
        ("o1", "1288.00", "2027-01-01T02:00:00Z"), ("o2", "3900.00", "2027-01-21T02:00:00Z")]
    assert [(c["at"], c["tier"], c["spend_12m"]) for c in tier["if_nothing_happens"]] == [
        ("2027-01-01T02:00:00Z", "premium", "3900.00"), ("2027-01-21T02:00:00Z", "standard", "0.00")]
    status = why["status"]
    assert (status["status"], status["last_purchase_at"], status["last_interaction_at"]) == (
        "active", "2026-01-21T02:00:00Z", "2026-01-23T02:00:00Z")
    assert status["if_nothing_happens"] == [{"at": "2026-02-22T02:00:00Z", "status": "potential"},
                                            {"at": "2026-07-22T02:00:00Z", "status": "dormant"}]
    value = why["value"]
    assert (value["value"], value["rfm"], value["recency_whole_days"], value["frequency"], value["monetary"]) == (
        "medium", {"r": 5, "f": 2, "m": 4}, 20, 2, "5188.00")
    assert value["if_nothing_happens"] == [{"at": "2026-07-21T02:00:00Z", "value": "low",
                                            "rfm": {"r": 2, "f": 2, "m": 4}}]
    points = why["points"]
    assert (points["balance"], points["debt"], points["next_expiry"]) == (
        5768, 0, {"points": 968, "expires_at": "2027-01-01T02:00:00Z"})
    assert points["lots"] == [{"points": 968, "expires_at": "2027-01-01T02:00:00Z"},
                              {"points": 4800, "expires_at": "2027-01-21T02:00:00Z"}]
    campaigns = why["campaigns"]
    assert campaigns["win_back"] == {"last": None, "not_before": None, "next_if_nothing_happens": "2026-07-22T02:00:00Z"}
    assert campaigns["birthday"] == {"last": None, "next": {"trigger_id": "birthday:c1:2026",
                                                            "at": "2026-03-13T16:00:00Z"}}


def test_explain_in_plain_words(run):
    cluster, worker = run
    result = cluster.loyalty("explain", "c1", "--url", worker.url)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "customer   c1, as of 2026-02-10T02:00:00Z" in text
    assert ("tier       vip: net spend 5188.00 from 2 order(s) paid in the 365 days to 2026-02-10; "
            "premium from 1000.00, vip from 5000.00.") in text
    assert "if nothing happens: potential from 2026-02-22, dormant from 2026-07-22." in text
    assert "if nothing happens: low from 2026-07-21." in text
    assert "next expiry: 968 points on 2027-01-01." in text
    assert "next birthday:c1:2026 at 2026-03-13T16:00:00Z" in text


def test_explain_offline_on_a_replay_store_says_the_same(run):
    cluster, _ = run
    store = cluster.workdir / "explain-store"
    result = cluster.loyalty("replay", "--out", str(store), "--json")
    assert result.returncode == 0, result.stderr.decode()
    offline = cluster.loyalty("explain", "c1", "--json", "--store", str(store), env={"LOYALTY_URL": "http://nowhere"})
    assert offline.returncode == 0, offline.stderr.decode()
    assert orjson.loads(offline.stdout) == explain_json(run)


def test_an_unknown_customer_exits_1_and_a_bad_id_exits_2(run):
    cluster, worker = run
    unknown = cluster.loyalty("explain", "nobody", "--url", worker.url)
    assert unknown.returncode == 1 and b"nobody" in unknown.stderr and b"Traceback" not in unknown.stderr
    bad = cluster.loyalty("explain", "x" * 65, "--url", worker.url)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
