"""`loyalty replay` rebuilds the live state exactly (`--verify`), as of a time (`--until`), under another
policy (`--policy`), and the same store byte for byte every time."""
from __future__ import annotations

import re

import orjson
import pytest
from kafka import KafkaProducer

from projections.state import CustomerState
from streams.kafka_log import read_topic
from streams.settings import PARTITION_KEYS
from tests.fixtures.kafka import Cluster
from tests.integration.oracles import (
    assert_equals_uninterrupted_run, customers_in, distinct_valid_events, history, wait_until_applied,
)
from tests.support.events import event_line
from tools.broker import free_port
from tools.store import ReplayStore

pytestmark = pytest.mark.broker


def run_json(cluster: Cluster, *args: str, expect: int = 0, env: dict | None = None) -> dict:
    """Run a `loyalty` command that prints JSON; check its exit code and return the document."""
    result = cluster.loyalty(*args, env=env)
    assert result.returncode == expect, (result.stdout.decode()[-2000:], result.stderr.decode()[-2000:])
    return orjson.loads(result.stdout)


@pytest.fixture(scope="module")
def live(module_cluster):
    """One live run of a synthetic history (with repeats and bad lines) by one worker."""
    lines = history(3000, 200, seed=31)
    worker = module_cluster.worker("live")
    module_cluster.produce_lines(lines)
    wait_until_applied(worker, distinct_valid_events(lines))
    return module_cluster, worker, lines


def test_verify_is_identical_after_a_live_run(live, tmp_path):
    cluster, worker, lines = live
    assert_equals_uninterrupted_run(cluster, worker, lines, tmp_path / "replay")
    result = cluster.loyalty("replay", "--verify", "--out", str(tmp_path / "again"))
    assert result.returncode == 0, result.stderr.decode()
    assert "verify: identical (200 customers)" in result.stdout.decode()


def test_verify_fails_when_the_live_state_differs(live, tmp_path):
    """Forge the live state in the table's changelog: one balance changed, one customer dropped."""
    cluster, _, _ = live
    topic = cluster.settings.changelog_topic
    latest = {}
    for record in read_topic(cluster.settings.broker, topic):
        latest[record.key] = (record.partition, record.value)
    changed, dropped = sorted(key for key in latest if key not in PARTITION_KEYS)[:2]
    state = CustomerState.from_bytes(latest[changed][1])
    state.points_balance += 100
    producer = KafkaProducer(bootstrap_servers=cluster.settings.bootstrap_servers, acks="all")

    def send(key: bytes, value):
        producer.send(topic, key=key, value=value, partition=latest[key][0])
        producer.flush()
    try:
        send(changed, state.to_bytes())
        send(dropped, None)
        report = run_json(cluster, "replay", "--verify", "--json", "--out", str(tmp_path / "r1"), expect=1)
        assert report["verify"]["identical"] is False
        assert report["verify"]["differences"] == [
            {"customer_id": changed.decode(), "fields": {"points_balance": {
                "replay": state.points_balance - 100, "live": state.points_balance}}},
            {"customer_id": dropped.decode(), "missing_in": "live"},
        ]
        result = cluster.loyalty("replay", "--verify", "--out", str(tmp_path / "r2"))
        assert result.returncode == 1
        assert f"{changed.decode()}.points_balance: replay {state.points_balance - 100}" in result.stderr.decode()
    finally:  # put the true state back (last value wins), for the other tests of this module
        send(changed, latest[changed][1])
        send(dropped, latest[dropped][1])
        producer.close()
    report = run_json(cluster, "replay", "--verify", "--json", "--out", str(tmp_path / "r3"))
    assert report["verify"]["identical"] is True


def test_replaying_twice_gives_byte_identical_stores(live, tmp_path):
    cluster, _, _ = live
    first = run_json(cluster, "replay", "--json", "--out", str(tmp_path / "one"))
    second = run_json(cluster, "replay", "--json", "--out", str(tmp_path / "two"))
    for volatile in ("seconds", "records_per_second", "events_per_second", "out"):
        first.pop(volatile), second.pop(volatile)
    assert first == second
    stores = [ReplayStore(tmp_path / name) for name in ("one", "two")]
    try:
        one, two = (list(store.items()) for store in stores)
    finally:
        for store in stores:
            store.close()
    assert len(one) == first["customers"] + 1  # the customers and the metadata record
    assert one == two


def test_query_reads_a_replayed_store_without_a_worker(live, tmp_path):
    cluster, worker, lines = live
    run_json(cluster, "replay", "--json", "--out", str(tmp_path / "store"))
    nobody = {"LOYALTY_URL": f"http://127.0.0.1:{free_port()}"}  # no worker listens there
    store = ("--store", str(tmp_path / "store"), "--json")
    assert run_json(cluster, "query", "stats", *store, env=nobody) == worker.stats()
    customer_id = sorted(customers_in(lines))[0]
    assert run_json(cluster, "query", "customer", customer_id, *store, env=nobody) == \
        worker.get(f"/customers/{customer_id}")
    assert run_json(cluster, "query", "segment", "--status", "dormant", *store, env=nobody)["customer_ids"] == \
        worker.get("/segments?status=dormant")["customer_ids"]
    assert cluster.loyalty("query", "customer", "nobody-here", *store, env=nobody).returncode == 1


UNTIL = "2025-08-15T12:00:00Z"


def test_until_equals_a_live_run_stopped_at_that_time(tmp_path):
    """Replay --until T of the full log == a live run sent the events up to T, then a tick at T."""
    docs = sorted((orjson.loads(line) for line in history(3000, 200, seed=41) if line.startswith(b"{\"event_id")),
                  key=lambda doc: doc["occurred_at"])  # in time order: no late event straddles T
    lines = [orjson.dumps(doc) for doc in docs]
    prefix = [orjson.dumps(doc) for doc in docs if doc["occurred_at"] <= UNTIL]
    assert 0 < len(prefix) < len(lines)
    (tmp_path / "full").mkdir(), (tmp_path / "cut").mkdir()
    full, cut = Cluster(tmp_path / "full"), Cluster(tmp_path / "cut")
    try:
        full.produce_lines(lines)
        worker = cut.worker("cut")
        cut.produce_lines(prefix)
        assert cut.loyalty("produce", "--tick", UNTIL).returncode == 0
        wait_until_applied(worker, distinct_valid_events(prefix))
        # Waits for the worker to have committed every record, the tick included, and checks it.
        run_json(cut, "replay", "--verify", "--json", "--out", str(tmp_path / "cut-replay"))

        store_dir = str(tmp_path / "until")
        summary = run_json(full, "replay", "--until", UNTIL, "--json", "--out", store_dir)  # no worker at all
        assert summary["until"] == UNTIL and summary["customers"] == len(customers_in(prefix))
        assert run_json(full, "query", "stats", "--store", store_dir, "--json") == worker.stats()
        store = ReplayStore(tmp_path / "until")
        try:
            replayed = [state.customer_id for state in store.states()]
        finally:
            store.close()
        assert set(replayed) == customers_in(prefix)
        from tools.query import StoreSource
        source = StoreSource(tmp_path / "until")
        try:
            differing = [c for c in replayed if source.customer(c) != worker.get(f"/customers/{c}")]
        finally:
            source.store.close()
        assert not differing, differing[:5]
        for customer_id in replayed[:2]:
            assert run_json(full, "query", "customer", customer_id, "--store", store_dir, "--json") == \
                run_json(cut, "query", "customer", customer_id, "--json", "--url", worker.url)
    finally:
        full.close()
        cut.close()


def _event(n: int, event_type: str, customer_id: str, day: int, payload: dict) -> bytes:
    """Event e{n}, on day `day` of March 2025."""
    return event_line(f"e{n}", event_type, customer_id, f"2025-03-{day:02d}T10:00:00Z", **payload)


def scripted_spending() -> list[bytes]:
    """Eight customers, each registered on 1 March and paying orders on 2 and 3 March."""
    orders = {"p-500": ["500.00"], "p-1500": ["1500.00"], "p-2999": ["2999.99"], "p-3000": ["3000.00"],
              "p-1200": ["1200.00", "100.00"], "p-6000": ["6000.00", "100.00"], "p-12000": ["12000.00"],
              "p-25000": ["25000.00"]}
    lines, n = [], 0
    for customer_id, amounts in orders.items():
        n += 1
        lines.append(_event(n, "customer.registered", customer_id, 1, {}))
        for day, amount in enumerate(amounts, start=2):
            n += 1
            lines.append(_event(n, "order.paid", customer_id, day,
                                {"order_id": f"{customer_id}-{day}", "amount": amount, "currency": "CNY"}))
    lines.append(orjson.dumps({"event_id": "tick", "event_type": "clock.tick", "customer_id": None,
                               "occurred_at": "2025-03-20T00:00:00Z", "schema_version": 1, "payload": {}}))
    return lines


def test_policy_with_raised_tier_thresholds_reports_the_downgrades(cluster, tmp_path):
    """Worked by hand: premium from 1000 to 3000, vip from 5000 to 20000.

    p-1500, p-2999 and p-1200 (1300 spent) fall from premium to standard; p-6000 (6100) and p-12000 fall
    from vip to premium; p-500, p-3000 (exactly the new minimum) and p-25000 keep their tier. The second
    orders earn at the tier held before them: p-1200's 100.00 earns 100 instead of 120 (x1.2), p-6000's
    earns 120 (x1.2) instead of 150 (x1.5), so 50 points fewer are outstanding.
    """
    cluster.produce_lines(scripted_spending())
    policy = tmp_path / "raised.toml"
    policy.write_text('[tier]\npremium_min = "3000.00"\nvip_min = "20000.00"\n')
    report = run_json(cluster, "replay", "--policy", str(policy), "--json", "--out", str(tmp_path / "out"))
    what_if = report["what_if"]
    assert what_if["moves"] == {"tier premium -> standard": 3, "tier vip -> premium": 2}
    assert what_if["before"]["by_tier"] == {"standard": 1, "premium": 4, "vip": 3}
    assert what_if["after"]["by_tier"] == {"standard": 4, "premium": 3, "vip": 1}
    assert what_if["before"]["points_outstanding"] == 500 + 1500 + 2999 + 3000 + 1320 + 6150 + 12000 + 25000
    assert what_if["points_outstanding_change"] == -50
    assert what_if["customers_changed"] == 5
    assert {row["customer_id"]: row["changes"] for row in what_if["sample"]} == {
        "p-1200": ["tier premium -> standard", "points_balance 1320 -> 1300"],
        "p-12000": ["tier vip -> premium"],
        "p-1500": ["tier premium -> standard"],
        "p-2999": ["tier premium -> standard"],
        "p-6000": ["tier vip -> premium", "points_balance 6150 -> 6120"],
    }
    # Tier upgrades (the UTC date and the new tier are the trigger's period): p-1500, p-2999 and p-1200 are
    # no longer congratulated on premium, p-6000 and p-12000 on premium instead of vip; p-3000 (premium)
    # and p-25000 (vip) keep the same ids. Nothing else fires differently.
    assert (what_if["campaigns"]["newly_fired"], what_if["campaigns"]["no_longer_fired"]) == (2, 5)
    by_campaign = what_if["campaigns"]["by_campaign"]
    assert by_campaign["tier_upgraded"] == {"before": 7, "after": 4, "no_longer_fired": 5, "newly_fired": 2}
    assert all(n["newly_fired"] == n["no_longer_fired"] == 0 for name, n in by_campaign.items()
               if name != "tier_upgraded")
    # The store holds the current policy's state; the people's report says the same as the JSON.
    assert report["stats"]["by_tier"] == what_if["before"]["by_tier"]
    text = cluster.loyalty("replay", "--policy", str(policy), "--out", str(tmp_path / "out2"))
    assert text.returncode == 0, text.stderr.decode()
    assert re.search(r"^\s+3 customers: tier premium -> standard$", text.stdout.decode(), re.M)
    assert re.search(r"^\s+2 customers: tier vip -> premium$", text.stdout.decode(), re.M)
