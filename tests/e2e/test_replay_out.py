"""`loyalty replay` writes a new directory or replaces its own store; `--verify` and `--policy` write none."""
from __future__ import annotations

import orjson
import pytest

from tests.fixtures.kafka import wait_for
from tools.store import MARKER

pytestmark = pytest.mark.broker

EVENTS = [
    b'{"event_id":"e1","event_type":"customer.registered","customer_id":"c1","occurred_at":"2026-01-05T10:00:00Z"}',
    b'{"event_id":"e2","event_type":"order.paid","customer_id":"c1","occurred_at":"2026-01-05T11:00:00Z",'
    b'"payload":{"order_id":"o1","amount":"1288.00"}}',
]


def test_replay_out_never_deletes_what_it_did_not_create(cluster):
    cluster.produce_lines(EVENTS)
    photos = cluster.workdir / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"\xff\xd8")
    refused = cluster.loyalty("replay", "--out", "photos")
    assert refused.returncode == 2, refused.stderr.decode()
    assert "not a replay store" in refused.stderr.decode() and b"Traceback" not in refused.stderr
    assert (photos / "holiday.jpg").read_bytes() == b"\xff\xd8"

    for _ in range(2):  # a new directory, then the same one again: its own store is replaced
        done = cluster.loyalty("replay", "--out", "store")
        assert done.returncode == 0, done.stderr.decode()
        assert b"Traceback" not in done.stderr, done.stderr.decode()  # aiokafka's stop() raised CancelledError
        assert (cluster.workdir / "store" / MARKER).exists()
    shown = cluster.loyalty("query", "customer", "c1", "--store", "store", "--json")
    assert shown.returncode == 0 and orjson.loads(shown.stdout)["points_balance"] == 1288


def test_policy_and_verify_write_no_store_unless_out_is_given(cluster):
    cluster.produce_lines(EVENTS)
    (cluster.workdir / "vip.toml").write_text('[tier]\nvip_min = "1000.00"\n')
    what_if = cluster.loyalty("replay", "--policy", "vip.toml")
    assert what_if.returncode == 0, what_if.stderr.decode()
    assert "no store written" in what_if.stdout.decode()
    worker = cluster.worker("w1")
    wait_for(lambda: worker.stats()["events_applied"] == 2, 90, "the worker to apply both events")
    verify = cluster.loyalty("replay", "--verify", "--json")
    assert verify.returncode == 0, verify.stderr.decode()
    assert orjson.loads(verify.stdout)["out"] is None
    assert not (cluster.workdir / "replay").exists()
