"""Checkout commands with two workers: the one asked answers for the owner; workers killed mid-command lose nothing."""
from __future__ import annotations

import os
import signal
import threading
import time

import orjson
import pytest

from schemas.timeutil import format_ms
from streams.kafka_log import read_topic
from streams.settings import INPUT_TOPIC, LEDGER_TOPIC
from tests.fixtures.kafka import wait_for
from tests.integration.test_checkout_http import call
from tests.integration.test_failover import local_customers

pytestmark = pytest.mark.broker

CUSTOMERS = [f"k{n}" for n in range(12)]


def seeded_pair(cluster):
    """Two workers of one group, each owning some of CUSTOMERS, who hold 1,000 points each."""
    a, b = cluster.worker("a"), cluster.worker("b")
    now = format_ms(int(time.time() * 1000) - 60_000)
    cluster.produce_lines([orjson.dumps({
        "event_id": f"seed-{c}", "event_type": "points.adjusted", "customer_id": c, "occurred_at": now,
        "payload": {"points": 1000, "reason": "seed"}}) for c in CUSTOMERS])

    def split():
        local_a, local_b = a.get("/stats?scope=local"), b.get("/stats?scope=local")
        return (local_a["customers"] > 0 and local_b["customers"] > 0
                and local_a["events_applied"] + local_b["events_applied"] == len(CUSTOMERS))
    wait_for(split, 90, "both workers to own some customers and to have applied the seed")
    return a, b


def source_count(cluster, topic: str, event_id: str, field: str) -> int:
    """How many records of a topic name the event id in `field`."""
    return sum(1 for record in read_topic(cluster.broker.url, topic, timeout_s=30)
               if orjson.loads(record.value).get(field) == event_id)


def test_a_command_sent_to_the_worker_that_does_not_own_the_customer_is_answered(cluster):
    a, b = seeded_pair(cluster)
    customer = sorted(local_customers(b))[0]
    assert customer not in local_customers(a)
    status, done = call(a, "POST", f"/customers/{customer}/redemptions", {"redemption_id": "far", "points": 100},
                        token=None)
    assert (status, done["status"], done["balance_after"]) == (200, "accepted", 900), done
    # The owner tells the same outcome, and a retry at the owner debits nothing more.
    assert call(b, "GET", f"/customers/{customer}/commands/redeem/far", token=None) == (200, done)
    assert call(b, "POST", f"/customers/{customer}/redemptions", {"redemption_id": "far", "points": 100},
                token=None) == (200, done)
    assert b.get(f"/customers/{customer}")["points_balance"] == 900


def test_workers_killed_between_produce_and_answer_then_the_same_command_gives_one_outcome(cluster):
    a, b = seeded_pair(cluster)
    customer = sorted(local_customers(b))[0]
    body = {"redemption_id": "cut", "points": 250}
    os.kill(b.proc.pid, signal.SIGSTOP)  # the owner cannot fold the command: it is produced but not answered
    first: list = []
    asking = threading.Thread(target=lambda: first.append(_call_or_error(a, customer, body)), daemon=True)
    asking.start()
    wait_for(lambda: source_count(cluster, INPUT_TOPIC, "cmd:redeem:cut", "event_id") == 1, 30,
             "the command on the input topic")
    assert asking.is_alive(), first  # still waiting for the owner's outcome
    os.kill(a.proc.pid, signal.SIGKILL)  # the worker that took the request, by its PID
    os.kill(b.proc.pid, signal.SIGKILL)  # and the owner, before it ever folded the command
    asking.join(30)
    assert first and first[0][0] != 200, first  # no answer came from the killed worker
    a.proc.wait(), b.proc.wait()

    c = cluster.worker("c")  # a fresh worker of the group recovers both from the changelog and the log
    wait_for(lambda: c.get("/stats?scope=local")["customers"] == len(CUSTOMERS), 150,
             "the new worker to own every partition")
    answers = [call(c, "POST", f"/customers/{customer}/redemptions", body, token=None) for _ in range(2)]
    assert answers[0] == answers[1] and answers[0][0] == 200, answers
    assert (answers[0][1]["status"], answers[0][1]["balance_after"]) == ("accepted", 750)
    assert c.get(f"/customers/{customer}")["points_balance"] == 750
    assert source_count(cluster, LEDGER_TOPIC, "cmd:redeem:cut", "source_event_id") == 1


def _call_or_error(worker, customer: str, body: dict) -> tuple:
    """POST the redemption; a connection cut by the kill is an answer of its own."""
    try:
        return call(worker, "POST", f"/customers/{customer}/redemptions", body, token=None)
    except OSError as exc:
        return ("cut", repr(exc))
