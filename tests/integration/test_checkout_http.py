"""Checkout over HTTP on the embedded broker: commands answered from the fold, idempotent by id, scoped tokens."""
from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request

import orjson
import pytest

from schemas.timeutil import format_ms
from tests.fixtures.kafka import wait_for

pytestmark = pytest.mark.broker

READ_TOKEN = "storefront-read-token-0123456789"
COMMAND_TOKEN = "checkout-command-token-987654321"


def call(worker, method: str, path: str, body=None, token=COMMAND_TOKEN) -> tuple[int, dict]:
    """Send a request; return the status and the JSON answer (errors included)."""
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(worker.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


@pytest.fixture(scope="module")
def checkout(module_cluster):
    """A worker with a read token and a command token; customers m1..m3 hold 1,000 points each."""
    worker = module_cluster.worker("checkout", extra_env={"LOYALTY_API_TOKEN": READ_TOKEN,
                                                          "LOYALTY_COMMAND_TOKEN": COMMAND_TOKEN})
    now = format_ms(int(time.time() * 1000) - 60_000)
    module_cluster.produce_lines([orjson.dumps({
        "event_id": f"seed-{c}", "event_type": "points.adjusted", "customer_id": c, "occurred_at": now,
        "payload": {"points": 1000, "reason": "seed"}}) for c in ("m1", "m2", "m3")])
    wait_for(lambda: worker.stats()["events_applied"] == 3, 90, "the seed applied")
    return worker


def test_hold_partial_capture_and_release_answer_with_the_outcome(checkout):
    status, placed = call(checkout, "POST", "/customers/m1/holds", {"hold_id": "h1", "points": 600, "expires_in": 900})
    assert (status, placed["status"], placed["points"]) == (200, "accepted", 600), placed
    status, refused = call(checkout, "POST", "/customers/m1/redemptions", {"redemption_id": "r1", "points": 401})
    assert (status, refused["status"], refused["reason"]) == (422, "rejected", "insufficient_points")
    status, captured = call(checkout, "POST", "/customers/m1/holds/h1/capture", {"points": 450})
    assert (status, captured["balance_after"], captured["released"]) == (200, 550, 150), captured
    status, again = call(checkout, "POST", "/customers/m1/holds/h1/release", {})
    assert (status, again["reason"]) == (422, "hold_closed")
    holds = call(checkout, "GET", "/customers/m1/holds", token=READ_TOKEN)[1]
    assert (holds["points_available"], holds["holds"]) == (550, [])


def test_a_retry_gets_the_same_answer_and_another_body_under_the_same_id_is_a_conflict(checkout):
    first = call(checkout, "POST", "/customers/m2/redemptions", {"redemption_id": "r1", "points": 100})
    assert first[0] == 200 and first[1]["balance_after"] == 900, first
    assert call(checkout, "POST", "/customers/m2/redemptions", {"redemption_id": "r1", "points": 100}) == first
    status, conflict = call(checkout, "POST", "/customers/m2/redemptions", {"redemption_id": "r1", "points": 5})
    assert (status, conflict["error"]) == (409, "conflict")
    assert checkout.get("/customers/m2")["points_balance"] == 900
    status, asked = call(checkout, "GET", "/customers/m2/commands/redeem/r1", token=READ_TOKEN)
    assert (status, asked["entry_id"]) == (200, first[1]["entry_id"])


def test_concurrent_redemptions_of_one_customer_never_overspend(checkout):
    bodies = [{"redemption_id": f"c{i}", "points": 300} for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda b: call(checkout, "POST", "/customers/m3/redemptions", b), bodies))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 422, 422, 422], answers
    assert checkout.get("/customers/m3")["points_balance"] == 100
    page = call(checkout, "GET", "/customers/m3/ledger?limit=2", token=READ_TOKEN)[1]
    assert [e["points"] for e in page["entries"]] == [-300, -300] and page["next_cursor"] is not None
    rest = call(checkout, "GET", f"/customers/m3/ledger?limit=5&cursor={page['next_cursor']}", token=READ_TOKEN)[1]
    assert [e["points"] for e in rest["entries"]] == [-300, 1000] and rest["next_cursor"] is None


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not JSON"), (b"[1]", "not a JSON object"),
    ({"redemption_id": "r9", "points": -5}, "points"), ({"redemption_id": "r9", "points": 10**13}, "points"),
    ({"redemption_id": "r9", "points": "5"}, "points"), ({"redemption_id": "r9", "points": 5, "extra": 1}, "extra"),
    ({"points": 5}, "redemption_id"),
])
def test_malformed_bodies_are_refused_with_400_and_a_reason(checkout, body, reason):
    status, answer = call(checkout, "POST", "/customers/m1/redemptions", body)
    assert status == 400 and reason in answer["reason"], answer


def test_the_read_token_reads_but_sends_no_command_and_the_command_token_does_both(checkout):
    body = {"claim_id": "k1", "reward_id": "nothing-like-it"}
    assert call(checkout, "POST", "/customers/m1/claims", body, token=READ_TOKEN)[0] == 401
    assert call(checkout, "POST", "/customers/m1/claims", body, token=None)[0] == 401
    status, refused = call(checkout, "POST", "/customers/m1/claims", body)
    assert (status, refused["reason"]) == (422, "unknown_reward")
    assert call(checkout, "GET", "/customers/m1", token=COMMAND_TOKEN)[0] == 200
    assert call(checkout, "GET", "/customers/m1/ledger", token=None)[0] == 401


def test_loyalty_query_ledger_pages_the_members_history(checkout, module_cluster):
    first = module_cluster.loyalty("query", "ledger", "m3", "--limit", "3", "--json", "--url", checkout.url,
                                   env={"LOYALTY_API_TOKEN": READ_TOKEN})
    assert first.returncode == 0, first.stderr
    page = orjson.loads(first.stdout)
    assert len(page["entries"]) == 3 and page["entries"][0]["balance_after"] == 100
    text = module_cluster.loyalty("query", "ledger", "m3", "--cursor", page["next_cursor"], "--url", checkout.url,
                                  env={"LOYALTY_API_TOKEN": READ_TOKEN})
    assert text.returncode == 0 and b"adjust" in text.stdout and b"more:" not in text.stdout, text.stdout


def test_an_order_naming_a_hold_captures_it_and_the_capture_answers_for_the_order(checkout, module_cluster):
    now = format_ms(int(time.time() * 1000) - 30_000)
    module_cluster.produce_lines([orjson.dumps({"event_id": "seed-m4", "event_type": "points.adjusted",
                                                "customer_id": "m4", "occurred_at": now,
                                                "payload": {"points": 1000, "reason": "seed"}})])
    wait_for(lambda: call(checkout, "GET", "/customers/m4", token=READ_TOKEN)[0] == 200, 30, "m4 seeded")
    assert call(checkout, "POST", "/customers/m4/holds", {"hold_id": "h9", "points": 400, "expires_in": 900})[0] == 200
    module_cluster.produce_lines([orjson.dumps({
        "event_id": "order-m4", "event_type": "order.paid", "customer_id": "m4",
        "occurred_at": format_ms(int(time.time() * 1000)), "payload": {"order_id": "o9", "amount": "10.00",
                                                                       "hold_id": "h9"}})])
    wait_for(lambda: call(checkout, "GET", "/customers/m4/commands/capture/h9", token=READ_TOKEN)[0] == 200, 30,
             "the order's capture")
    status, captured = call(checkout, "GET", "/customers/m4/commands/capture/h9", token=READ_TOKEN)
    assert (captured["order_id"], captured["points"], captured["balance_after"]) == ("o9", -400, 600), captured
    assert call(checkout, "POST", "/customers/m4/holds/h9/capture", {}) == (200, captured)
    assert call(checkout, "POST", "/customers/m4/holds/h9/capture", {"points": 100})[0] == 409
    assert call(checkout, "GET", "/customers/m4", token=READ_TOKEN)[1]["points_held"] == 0
    entries = call(checkout, "GET", "/customers/m4/ledger", token=READ_TOKEN)[1]["entries"]
    assert [(e["kind"], e["points"]) for e in entries][1:] == [("redeem", -400), ("adjust", 1000)], entries
    assert entries[0]["kind"] == "earn" and entries[0]["balance_after"] == 600 + entries[0]["points"]
