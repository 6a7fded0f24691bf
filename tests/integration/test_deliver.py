"""`loyalty deliver` against a real HTTP receiver that fails at random, and a deliverer killed with -9 mid-run:
every trigger arrives at least once, in order per customer, signed, each duplicate with the same idempotency key."""
from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

from schemas.outputs import campaign_trigger
from streams.kafka_log import high_watermarks
from tests.fixtures.kafka import wait_for
from tests.support.receiver import Receiver
from tests.support.topics import read_topic
from tests.support.promtext import samples, scrape, series, value
from tools.broker import bootstrap_servers, free_port
from tools.processes import stop_process

pytestmark = pytest.mark.broker

TOPIC = "campaign-triggers"
SECRET = b"s3cret-for-tests"


def trigger(customer: str, seq: int, campaign: str = "win_back") -> dict:
    return campaign_trigger(trigger_id=f"{campaign}:{customer}:{seq}", campaign=campaign, customer_id=customer,
                            at=f"2026-03-01T00:00:{seq:02d}Z", tier="standard", status="active",
                            points_balance=seq, details={"seq": seq})


def send(cluster, records: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(cluster.settings.broker), acks="all")
    try:
        for record in records:
            producer.send(TOPIC, key=record["customer_id"].encode(), value=orjson.dumps(record))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def start_deliverer(cluster, receiver: Receiver, log_name: str, *args: str) -> subprocess.Popen:
    secret_file = cluster.workdir / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    with open(cluster.workdir / log_name, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "tools", "deliver", "--topic", TOPIC, "--url", receiver.url,
                                 "--secret-file", str(secret_file), "--group", "test-deliver", *args],
                                env=cluster.env(), stdout=log, stderr=subprocess.STDOUT, cwd=cluster.workdir)


def committed(cluster) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cluster.settings.broker))
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(cluster.settings.partitions)]
        offsets = admin.list_group_offsets({"test-deliver": partitions}).get("test-deliver", {})
        return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        admin.close()


def test_every_record_arrives_at_least_once_in_order_through_failures_and_a_kill(cluster):
    records = [trigger(f"c{c:02d}", seq) for seq in range(5) for c in range(40)]
    send(cluster, records)
    ends = high_watermarks(cluster.settings.broker, TOPIC)
    with Receiver(SECRET, seed=7) as receiver:
        options = ("--timeout", "1", "--backoff", "0.05", "--backoff-max", "0.5", "--max-attempts", "60",
                   "--concurrency", "4")
        first = start_deliverer(cluster, receiver, "deliver-1.log", *options)
        try:
            wait_for(lambda: len({r.key for r in receiver.accepted()}) >= 60, 120, "a third delivered")
        finally:
            first.kill()  # kill -9: nothing is committed on the way out
            first.wait()
        killed_at = len(receiver.all())
        second = start_deliverer(cluster, receiver, "deliver-2.log", *options)
        try:
            wanted = {r["trigger_id"] for r in records}
            wait_for(lambda: wanted <= {r.key for r in receiver.accepted()}, 180, "every trigger delivered")
            wait_for(lambda: committed(cluster) == ends, 30, "the offsets committed past every record")
        finally:
            stop_process(second, 30)
        log = (cluster.workdir / "deliver-2.log").read_text()
        assert second.returncode == 0, log
    requests = receiver.all()
    accepted = receiver.accepted()
    print(f"\n{len(records)} records: {len(requests)} requests ({killed_at} before the kill), "
          f"{len(accepted)} answered 200, {len(accepted) - len({r.key for r in accepted})} of them duplicates")
    assert len(requests) > killed_at  # the second deliverer did the rest
    assert {r.behaviour for r in requests} >= {"ok", "error", "throttle", "slow", "reset"}
    assert all(r.signed for r in requests)
    assert all(r.key == r.body["trigger_id"] for r in requests)  # a duplicate carries the same key
    assert read_topic(cluster.settings.broker, f"{TOPIC}-undelivered") == []  # none parked
    order = defaultdict(list)
    for request in sorted(receiver.accepted(), key=lambda r: r.at):
        if request.key not in {k for k, _ in order[request.body["customer_id"]]}:
            order[request.body["customer_id"]].append((request.key, request.body["details"]["seq"]))
    assert all([seq for _, seq in firsts] == list(range(5)) for firsts in order.values()), order
    assert f"deliver: {TOPIC} -> 127.0.0.1:" in log and "only every record" in log and "token" not in log
    assert "deliver: stopped;" in log


def test_hopeless_records_are_parked_and_the_rest_goes_on_and_only_the_chosen_campaigns_are_sent(cluster):
    answers = {"c-bad": "reject", "c-down": "down"}
    records = [trigger(c, seq, campaign) for seq in range(2) for c in ("c-ok", "c-bad", "c-down")
               for campaign in ("win_back", "birthday", "member_day")]
    send(cluster, records)
    metrics_url = f"http://127.0.0.1:{free_port()}"
    with Receiver(SECRET, choose=lambda body: answers.get(body["customer_id"], "ok")) as receiver:
        deliverer = start_deliverer(cluster, receiver, "deliver.log", "--only", "win_back,birthday",
                                    "--max-attempts", "3", "--backoff", "0.01",
                                    "--metrics-port", metrics_url.rpartition(":")[2])
        try:
            park_topic = f"{TOPIC}-undelivered"
            wait_for(lambda: len(read_topic(cluster.settings.broker, park_topic)) == 8, 60, "8 records parked")
            wait_for(lambda: len(receiver.accepted()) == 4, 30, "c-ok's 4 records delivered")
            metrics = wait_for(lambda: _all_counted(samples(scrape(metrics_url))), 30, "the metrics")
        finally:
            stop_process(deliverer, 30)
        log = (cluster.workdir / "deliver.log").read_text()
    assert "only birthday,win_back" in log
    assert {r.body["campaign"] for r in receiver.all()} == {"win_back", "birthday"}
    parked = [m.json() for m in read_topic(cluster.settings.broker, park_topic)]
    by_customer = defaultdict(list)
    for record in parked:
        by_customer[record["record"]["customer_id"]].append(record)
        assert record["idempotency_key"] == record["record"]["trigger_id"]
        assert record["source"]["topic"] == TOPIC
    assert {(r["reason"], r["attempts"]) for r in by_customer["c-bad"]} == {("http_400", 1)}  # not worth retrying
    assert {(r["reason"], r["attempts"]) for r in by_customer["c-down"]} == {("http_503", 3)}
    assert sum(1 for r in receiver.all() if r.body["customer_id"] == "c-down") == 4 * 3
    assert len(by_customer["c-bad"]) == len(by_customer["c-down"]) == 4
    assert value(metrics, "loyalty_delivery_delivered_total", topic=TOPIC) == 4
    assert value(metrics, "loyalty_delivery_skipped_total", topic=TOPIC) == 6  # member_day
    assert series(metrics, "loyalty_delivery_parked_total", "reason") == {"http_400": 4, "http_503": 4}
    assert series(metrics, "loyalty_delivery_retries_total", "reason") == {"http_503": 8}
    assert value(metrics, "loyalty_delivery_seconds_count", topic=TOPIC) == 4
    assert set(series(metrics, "loyalty_delivery_lag", "partition").values()) == {0}


def _all_counted(metrics: dict):
    """The metrics once the lag gauge says every record is done, else None."""
    lags = series(metrics, "loyalty_delivery_lag", "partition")
    return metrics if lags and set(lags.values()) == {0} else None
