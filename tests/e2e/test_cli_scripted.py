"""A scripted history through the real CLI, broker and worker: exact projections, queries and output topics.

The history and its hand-worked outcomes are in tests/support/scripted_history.py.
"""
from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from tests.support import scripted_history as h
from tests.support.invariants import check_running_balances
from tests.support.topics import read_topic, record_count

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def run(module_cluster):
    """Send the history through `loyalty produce FILE` to a worker and wait until it is folded."""
    return module_cluster, h.run_history(module_cluster)


def query(run, *args: str):
    cluster, worker = run
    return cluster.loyalty("query", *args, "--url", worker.url)


def query_json(run, *args: str):
    result = query(run, *args, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return orjson.loads(result.stdout)


@pytest.mark.parametrize("customer_id", sorted(h.EXPECTED_CUSTOMERS))
def test_customer_projection_is_exact(run, customer_id):
    view = query_json(run, "customer", customer_id)
    assert view["customer_id"] == customer_id
    expected = h.EXPECTED_CUSTOMERS[customer_id]
    assert {k: view[k] for k in expected} == expected


def test_customer_human_output(run):
    result = query(run, "customer", "alice")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert "customer   alice" in lines
    assert "points     161" in lines
    assert "tier       standard (spend 12m 100.99, lifetime 4351.49)" in lines
    assert ("status     dormant (last purchase 2025-04-01T10:00:00Z, "
            "last interaction 2025-05-01T10:00:00Z)") in lines
    assert "value      low (R 2, F 1, M 1)" in lines
    assert "birthday   1990-07-20 (America/New_York)" in lines
    assert "expiring        151 on 2026-04-01T10:00:00Z" in lines
    assert "expiring         10 on 2026-04-06T10:00:00Z" in lines
    assert "events     8" in lines


def test_unknown_customer_exits_1(run):
    result = query(run, "customer", "nobody")
    assert result.returncode == 1
    assert b"nobody" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.parametrize("status,tier,expected", [
    ("dormant", None, ["alice", "bob"]),
    ("dormant", "standard", ["alice", "bob"]),
    ("dormant", "premium", []),
    ("active", None, ["carol"]),
    ("active", "premium", ["carol"]),
    ("potential", None, []),
])
def test_segments(run, status, tier, expected):
    args = ["segment", "--status", status] + (["--tier", tier] if tier else [])
    assert query_json(run, *args) == {"status": status, "tier": tier, "value": None, "customer_ids": expected}
    human = query(run, *args)
    assert human.returncode == 0, human.stderr.decode()
    assert human.stdout.decode().split() == expected


@pytest.mark.parametrize("args,expected", [
    (["--value", "low"], ["alice", "bob"]),
    (["--value", "medium"], ["carol"]),
    (["--value", "high"], []),
    (["--value", "low", "--tier", "standard"], ["alice", "bob"]),
    (["--value", "medium", "--status", "active", "--tier", "premium"], ["carol"]),
    (["--value", "low", "--status", "active"], []),
])
def test_segments_by_value_class(run, args, expected):
    doc = query_json(run, "segment", *args)
    assert doc["customer_ids"] == expected and doc["value"] == args[1]
    human = query(run, "segment", *args)
    assert human.stdout.decode().split() == expected


def test_stats(run):
    assert query_json(run, "stats") == h.EXPECTED_STATS
    result = query(run, "stats")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines == [
        "customers           3",
        "by status           active 1, potential 0, dormant 2",
        "by tier             standard 2, premium 1, vip 0",
        "by value            high 0, medium 1, low 2, none 0",
        "points outstanding  1622",
        f"policy              {h.EXPECTED_STATS['policy_versions'][0]}",
        "events applied      27",
    ]


def test_ledger_matches_balances(run):
    cluster, _ = run
    messages = read_topic(cluster.settings.broker, "loyalty-ledger")
    assert len(messages) == h.LEDGER_COUNT
    by_customer = defaultdict(list)
    partitions = defaultdict(set)
    for m in messages:  # sorted by partition and offset: one customer's entries are in order
        entry = m.json()
        assert m.key == entry["customer_id"].encode()
        by_customer[entry["customer_id"]].append(entry)
        partitions[entry["customer_id"]].add(m.partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    for customer_id, expected in h.EXPECTED_LEDGER.items():
        entries = by_customer[customer_id]
        assert [(e["kind"], e["points"]) for e in entries] == expected
        balance = h.EXPECTED_CUSTOMERS[customer_id]["points_balance"]
        assert check_running_balances(entries).get(customer_id, 0) == balance
    ids = [m.json()["entry_id"] for m in messages]
    assert len(set(ids)) == len(ids)
    alice = by_customer["alice"]
    assert [e["source_event_id"] for e in alice[:7]] == ["a-o1", "a-o2", "a-o3", "a-o4", "a-ref", "a-rev", "a-red1"]
    assert alice[7]["occurred_at"] == "2026-03-01T10:00:00Z"  # the lot of 2025-03-01 expires 365 days later
    assert alice[1]["occurred_at"] == "2025-02-01T10:00:00Z"
    # the duplicate o-b1 earned once; the second check-in and share of a local day earned nothing
    assert [e["source_event_id"] for e in by_customer["bob"]].count("b-o1") == 1
    assert [e["source_event_id"] for e in by_customer["bob"][:5]] == ["b-ci1", "b-ci3", "b-sh1", "b-sh2", "b-sh3"]


def test_customer_updates(run):
    cluster, _ = run
    messages = read_topic(cluster.settings.broker, "customer-updates")
    assert len(messages) == h.UPDATES_COUNT
    records = [m.json() for m in messages]
    for m, r in zip(messages, records):
        assert m.key == r["customer_id"].encode()
    changes = sorted((r["customer_id"], r["kind"], r["from"], r["to"], r["at"])
                     for r in records if r["kind"] != "redemption_rejected")
    assert changes == sorted(h.EXPECTED_UPDATES)
    rejections = [(r["customer_id"], r["redemption_id"], r["points"], r["reason"], r["at"], r["source_event_id"])
                  for r in records if r["kind"] == "redemption_rejected"]
    assert rejections == h.EXPECTED_REJECTIONS
    by_source = {(r["customer_id"], r["kind"], r["from"], r["to"]): r["source_event_id"]
                 for r in records if "to" in r}
    assert by_source[("alice", "tier_changed", "standard", "premium")] == "a-o2"
    assert by_source[("alice", "tier_changed", "premium", "vip")] == "a-o3"
    assert by_source[("alice", "tier_changed", "vip", "premium")] == "a-ref"  # downgrade by refund
    assert by_source[("carol", "tier_changed", "standard", "premium")] == "c-o1"
    assert all(r["source_event_id"] for r in records)


def test_campaign_triggers(run):
    cluster, _ = run
    messages = read_topic(cluster.settings.broker, "campaign-triggers")
    records = [m.json() for m in messages]
    assert {r["trigger_id"]: (r["campaign"], r["customer_id"], r["at"]) for r in records} == h.EXPECTED_TRIGGERS
    assert len(records) == len(h.EXPECTED_TRIGGERS)  # each exactly once
    by_id = {r["trigger_id"]: r for r in records}
    for m, r in zip(messages, records):
        assert m.key == r["customer_id"].encode()
        assert {"tier", "status", "points_balance"} <= set(r)
    # at the win-back alice held 2011 points (nothing had expired yet) and had just become dormant
    assert by_id["win_back:alice:2025-10-28"]["points_balance"] == 2011
    assert by_id["win_back:alice:2025-10-28"]["status"] == "dormant"
    assert by_id["win_back:bob:2025-12-05"]["points_balance"] == 256
    # carol's birthday came after her first order: premium, 1200 points
    assert by_id["birthday:carol:2026"]["tier"] == "premium"
    assert by_id["birthday:carol:2026"]["points_balance"] == 1200
    # alice's reminder: the 151 points expiring on 2026-04-01 in New York, her balance 161 by then
    # (her time zone picks the date but is not in the record: outputs carry no personal field)
    assert by_id["points_expiring:alice:2026-04-01"]["details"] == {
        "points": 151, "expiry_date": "2026-04-01", "expires_at": "2026-04-01T10:00:00Z"}
    assert by_id["points_expiring:alice:2026-04-01"]["points_balance"] == 161
    assert by_id["tier_upgraded:alice:2025-03-01:vip"]["details"] == {"from": "premium", "to": "vip"}


def test_dlq_is_empty(run):
    cluster, _ = run
    assert record_count(cluster.settings.broker, "customer-events-dlq") == 0
