"""Bad input mixed with good events: each bad record lands in customer-events-dlq, the good ones are applied."""
from __future__ import annotations

import base64

import orjson
import pytest
from kafka import KafkaProducer

from tests.fixtures.kafka import wait_for
from tests.support.events import event_line as event
from tests.support.promtext import samples, scrape, series
from tests.support.topics import read_topic, record_count
from tools.broker import bootstrap_servers

pytestmark = pytest.mark.broker


NOT_UTF8 = b"\xff\xfe\x00{\"event_id\": \xc3\x28}"
WRONG_KEY_VALUE = event("q-wrong-key", "order.paid", "dq-b", "2026-01-02T06:00:00Z", order_id="ob-9", amount="999.00")

# (line, expected reason) in file order; reason None = a good event.
LINES = [
    (event("q1", "customer.registered", "dq-a", "2026-01-02T01:00:00Z"), None),
    (b"this is not json", "invalid_json"),
    (event("q2", "order.paid", "dq-a", "2026-01-02T02:00:00Z", order_id="oa-1", amount="100.00"), None),  # +100
    (NOT_UTF8, "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (event("q3", "order.shipped", "dq-a", "2026-01-02T02:30:00Z", order_id="oa-1"), "unknown_event_type"),
    (orjson.dumps({"event_id": "q4", "event_type": "order.paid", "occurred_at": "2026-01-02T02:40:00Z",
                   "payload": {"order_id": "ox", "amount": "5.00"}}), "missing_field"),
    (event("q5", "order.paid", "dq-a", "2026-01-02T02:50:00Z", order_id="oa-2", amount="-5"), "invalid_field"),
    (event("q6", "order.paid", "dq-b", "2026-01-02T02:55:00Z", order_id="ob-2", amount="1.234"), "invalid_field"),
    (orjson.dumps({"event_id": "q7", "event_type": "customer.checked_in", "customer_id": "dq-a",
                   "occurred_at": "2026-01-02T03:00:00Z", "schema_version": 2, "payload": {}}),
     "unsupported_schema_version"),
    (event("q8", "order.paid", "dq-b", "2026-01-02T03:05:00Z", order_id="ob-3", amount="10.00", currency="USD"),
     "unsupported_currency"),
    (event("q9", "order.paid", "dq-b", "2026-01-02T03:10:00Z", order_id="ob-1", amount="20.50"), None),  # +20
    (event("q10", "customer.checked_in", "dq-a", "2026-01-02T03:20:00Z"), None),  # +5
]
AFTER = event("q11", "customer.visited", "dq-b", "2026-01-02T07:00:00Z")  # sent after the wrong-key message

EXPECTED_REASONS = {  # loyalty_dlq_total by reason
    "invalid_json": 2, "not_an_object": 1, "unknown_event_type": 1, "missing_field": 1, "invalid_field": 2,
    "unsupported_schema_version": 1, "unsupported_currency": 1, "key_mismatch": 1,
}
DLQ_COUNT = 10  # 9 bad lines in the file + the wrong key
GOOD_COUNT = 5  # q1, q2, q9, q10, q11


@pytest.fixture(scope="module")
def run(module_cluster):
    cluster = module_cluster
    worker = cluster.worker()
    path = cluster.workdir / "mixed.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in LINES) + b"\n")
    result = cluster.loyalty("produce", str(path))
    assert result.returncode == 0, result.stderr.decode()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(cluster.settings.broker), acks="all")
    try:
        producer.send("customer-events", key=b"dq-wrong", value=WRONG_KEY_VALUE).get(timeout=30)
    finally:
        producer.close(timeout=5)
    cluster.produce_lines([AFTER])
    broker = cluster.settings.broker
    wait_for(lambda: worker.stats()["events_applied"] >= GOOD_COUNT, 120, "the good events to be applied")
    wait_for(lambda: record_count(broker, "customer-events-dlq") >= DLQ_COUNT, 60, "the DLQ records")
    return cluster, worker


def test_each_bad_record_is_in_the_dlq_with_its_reason_and_bytes(run):
    cluster, _ = run
    broker = cluster.settings.broker
    dlq = read_topic(broker, "customer-events-dlq")
    assert len(dlq) == DLQ_COUNT
    originals = {(m.partition, m.offset): m for m in read_topic(broker, "customer-events")}
    found = {}
    for message in dlq:
        record = message.json()
        assert {"error", "reason", "raw", "key", "source"} <= set(record)
        assert record["reason"] and record["error"].startswith(record["reason"])
        source = record["source"]
        assert source["topic"] == "customer-events"
        original = originals[(source["partition"], source["offset"])]
        raw = record["raw"]
        if record.get("raw_encoding") == "base64":
            raw_bytes = base64.b64decode(raw)
        else:
            assert record.get("raw_encoding", "utf-8") == "utf-8"
            raw_bytes = raw.encode()
        assert raw_bytes == original.value  # the original bytes, exactly
        assert record["key"] == (original.key.decode() if original.key is not None else None)
        assert message.key == original.key
        found[raw_bytes] = record
    for line, reason in LINES:
        if reason is not None:
            assert found[line]["reason"] == reason, (line, found[line])
    assert found[WRONG_KEY_VALUE]["reason"] == "key_mismatch"
    assert found[WRONG_KEY_VALUE]["key"] == "dq-wrong"
    assert found[NOT_UTF8]["raw_encoding"] == "base64"
    assert found[NOT_UTF8]["raw"] == base64.b64encode(NOT_UTF8).decode()
    assert found[b"this is not json"]["key"] is None
    assert found[b"this is not json"]["raw"] == "this is not json"
    bad_amount = found[LINES[7][0]]
    assert "amount" in bad_amount["error"]
    assert bad_amount["key"] == "dq-a"


def test_good_events_around_the_bad_ones_are_applied(run):
    cluster, worker = run
    a = orjson.loads(cluster.loyalty("query", "customer", "dq-a", "--json", "--url", worker.url).stdout)
    # q1 registered, q2 order 100.00 (+100), q10 check-in (+5); q3, q5 and q7 were rejected
    assert (a["points_balance"], a["events_applied"], a["lifetime_spend"]) == (105, 3, "100.00")
    b = orjson.loads(cluster.loyalty("query", "customer", "dq-b", "--json", "--url", worker.url).stdout)
    # q9 order 20.50 (+floor(20.50) = 20), q11 visit; q6, q8 and the wrong-key order (999.00) were rejected
    assert (b["points_balance"], b["events_applied"], b["lifetime_spend"]) == (20, 2, "20.50")
    assert b["last_interaction_at"] == "2026-01-02T07:00:00Z"
    stats = worker.stats()
    assert (stats["customers"], stats["events_applied"], stats["points_outstanding"]) == (2, GOOD_COUNT, 125)
    nobody = cluster.loyalty("query", "customer", "dq-wrong", "--url", worker.url)
    assert nobody.returncode == 1


def test_dlq_metrics_count_each_reason(run):
    _, worker = run
    all_samples = samples(scrape(worker.url))
    assert series(all_samples, "loyalty_dlq_total", "reason") == EXPECTED_REASONS
    rejected = sum(v for (name, labels), v in all_samples.items()
                   if name == "loyalty_events_total" and dict(labels)["outcome"] == "rejected")
    assert rejected == DLQ_COUNT
    applied = sum(v for (name, labels), v in all_samples.items()
                  if name == "loyalty_events_total" and dict(labels)["outcome"] == "applied")
    assert applied == GOOD_COUNT
