"""`loyalty tail` and `loyalty dlq` as a user runs them: read outputs, count and export the dead letters, fix
one, re-drive it (applied once, however often it is re-driven), and see what is still invalid."""
from __future__ import annotations

import select
import signal
import subprocess
import sys

import orjson
import pytest

from tests.fixtures.kafka import wait_for
from tests.support.events import event_line as event
from tests.support.topics import record_count

pytestmark = pytest.mark.broker

GOOD = [event("t1", "customer.registered", "tail-a", "2026-01-02T01:00:00Z"),
        event("t2", "order.paid", "tail-a", "2026-01-02T02:00:00Z", order_id="o1", amount="100.00"),
        event("t3", "order.paid", "tail-b", "2026-01-02T02:10:00Z", order_id="o2", amount="50.00"),
        event("t4", "customer.checked_in", "tail-b", "2026-01-02T03:00:00Z")]
BAD = [event("t5", "order.paid", "tail-a", "2026-01-02T04:00:00Z", order_id="o3", amount="-20.00"),
       event("t6", "order.paid", "tail-b", "2026-01-02T04:10:00Z", order_id="o4", amount="1.234"),
       b"not json at all"]


@pytest.fixture(scope="module")
def run(module_cluster):
    cluster = module_cluster
    worker = cluster.worker()
    cluster.produce_lines(GOOD + BAD)
    wait_for(lambda: worker.stats()["events_applied"] >= len(GOOD), 120, "the good events applied")
    wait_for(lambda: record_count(cluster.settings.broker, "customer-events-dlq") >= len(BAD), 60, "the DLQ")
    return cluster, worker


def json_lines(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_tail_reads_a_topic_all_of_it_the_latest_or_one_customer(run):
    cluster, _ = run
    everything = json_lines(cluster.loyalty("tail", "loyalty-ledger", "--from-beginning", "--json"))
    assert sorted(r["value"]["points"] for r in everything) == [5, 50, 100]
    assert {r["topic"] for r in everything} == {"loyalty-ledger"}
    assert len(json_lines(cluster.loyalty("tail", "loyalty-ledger", "-n", "2", "--json"))) == 2
    mine = json_lines(cluster.loyalty("tail", "loyalty-ledger", "--customer", "tail-b", "--json"))
    assert sorted(r["value"]["points"] for r in mine) == [5, 50]
    human = cluster.loyalty("tail", "loyalty-ledger", "--customer", "tail-a").stdout.decode()
    assert "tail-a" in human and "earn +100 balance 100" in human


def readline(proc: subprocess.Popen, timeout_s: float = 60.0) -> bytes:
    """Read one line of a child's stdout, failing the test after timeout_s."""
    ready = select.select([proc.stdout], [], [], timeout_s)[0]
    assert ready, f"no line within {timeout_s}s"
    return proc.stdout.readline()


def test_tail_follow_prints_records_as_they_arrive(run):
    cluster, _ = run
    follower = subprocess.Popen([sys.executable, "-m", "tools", "tail", "loyalty-ledger", "--follow", "--json",
                                 "-n", "1", "--customer", "tail-b"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=cluster.env(), cwd=cluster.workdir)
    try:
        latest = orjson.loads(readline(follower))  # printed once the follower knows where the topic ends
        assert (latest["value"]["customer_id"], latest["value"]["points"]) == ("tail-b", 5)
        cluster.produce_lines([event("t7", "content.shared", "tail-b", "2026-01-02T05:00:00Z")])
        line = orjson.loads(readline(follower))
        assert (line["value"]["customer_id"], line["value"]["points"]) == ("tail-b", 2)
    finally:
        follower.send_signal(signal.SIGINT)
        _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 0 and b"Traceback" not in stderr, stderr


def test_tail_of_an_unknown_topic_is_one_line_and_exit_2(run):
    cluster, _ = run
    result = cluster.loyalty("tail", "no-such-topic")
    assert result.returncode == 2 and result.stderr.decode().strip() == "Error: topic no-such-topic does not exist"


def test_dlq_list_counts_by_reason_and_event_type_with_examples(run):
    cluster, _ = run
    report = orjson.loads(cluster.loyalty("dlq", "list", "--json").stdout)
    assert report["total"] == 3
    assert report["by_reason"] == {"invalid_field": 2, "invalid_json": 1}
    groups = {(g["reason"], g["event_type"]): g for g in report["groups"]}
    assert groups[("invalid_field", "order.paid")]["count"] == 2
    assert groups[("invalid_json", "-")]["examples"][0]["error"].startswith("invalid_json")
    text = cluster.loyalty("dlq", "list").stdout.decode()
    assert "3 dead letters" in text and "e.g." in text
    shown = cluster.loyalty("dlq", "show", "--reason", "invalid_json").stdout.decode()
    assert "not json at all" in shown


def test_export_fix_and_redrive_applies_the_fixed_event_once(run):
    cluster, worker = run
    exported = cluster.loyalty("dlq", "export", "--reason", "invalid_field")
    lines = json_lines(exported)
    assert b"exported 2 dead letters" in exported.stderr
    fixed = []
    for line in lines:
        if line["event"]["event_id"] == "t5":
            line["event"]["payload"]["amount"] = "20.00"  # the fix; t6 is left as it was
        fixed.append(orjson.dumps(line))
    path = cluster.workdir / "fixed.jsonl"
    path.write_bytes(b"\n".join(fixed) + b"\n")
    before = worker.get("/customers/tail-a")["points_balance"]
    for _ in range(2):  # a second re-drive of the same file changes nothing: the event id is kept
        result = cluster.loyalty("dlq", "redrive", str(path))
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert "sent 1 events to customer-events; 1 still invalid" in stderr
        assert "line 2: invalid_field: payload.amount" in stderr or "line 1: invalid_field: payload.amount" in stderr
    wait_for(lambda: worker.get("/customers/tail-a")["points_balance"] == before + 20, 60, "the fix applied")
    cluster.produce_lines([event("t8", "customer.visited", "tail-a", "2026-01-02T06:00:00Z")])  # a marker after
    wait_for(lambda: worker.get("/customers/tail-a")["events_applied"] == 4, 60, "the marker applied")
    assert worker.get("/customers/tail-a")["points_balance"] == before + 20  # t5 once, not twice
