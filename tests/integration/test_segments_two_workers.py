"""Two workers: every segment query answers for the whole group; a third cannot take a running one's data dir."""
from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from schemas.policy import STATUSES, TIERS, VALUES
from tests.fixtures.kafka import wait_for
from tests.integration.oracles import distinct_valid_events, history

pytestmark = pytest.mark.broker


def segment(worker, status=None, tier=None, scope=None, value=None) -> set[str]:
    """GET /segments with only the parameters given."""
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("tier", tier), ("value", value), ("scope", scope))
                     if v)
    return set(worker.get(f"/segments?{query}")["customer_ids"])


def test_every_segment_query_is_the_union_of_both_workers_local_answers(cluster):
    lines = history(3000, 300, seed=5)
    a, b = cluster.worker("a"), cluster.worker("b")
    cluster.produce_lines(lines)
    applied = distinct_valid_events(lines)

    def both_hold_partitions():
        local_a, local_b = a.get("/stats?scope=local"), b.get("/stats?scope=local")
        return (local_a["customers"] > 0 and local_b["customers"] > 0
                and local_a["events_applied"] + local_b["events_applied"] == applied == a.stats()["events_applied"])
    wait_for(both_hold_partitions, 120, "both workers to hold partitions and to have applied every event")

    stats = a.stats()
    queries = ([(s, None) for s in STATUSES] + [(None, t) for t in TIERS]
               + list(itertools.product(STATUSES, TIERS)))
    for status, tier in queries:
        union = segment(a, status, tier, "local") | segment(b, status, tier, "local")
        assert segment(a, status, tier) == union == segment(b, status, tier), (status, tier)
        if tier is None:
            assert len(union) == stats["by_status"][status], status
        if status is None:
            assert len(union) == stats["by_tier"][tier], tier
    assert sum(len(segment(a, s)) for s in STATUSES) == stats["customers"]
    # By value class, alone and with a status and a tier: the union of both workers too.
    for value, status, tier in [(v, None, None) for v in VALUES] + list(itertools.product(VALUES, STATUSES[:1], TIERS)):
        union = segment(a, status, tier, "local", value) | segment(b, status, tier, "local", value)
        assert segment(a, status, tier, value=value) == union == segment(b, status, tier, value=value), value
        if status is None and tier is None:
            assert len(union) == stats["by_value"][value], value
    assert sum(stats["by_value"].values()) == stats["customers"] and stats["by_value"]["medium"] > 0

    # The CLI asks the same way, --tier alone included.
    for args, expected in ((("--status", "dormant"), segment(b, "dormant")),
                           (("--tier", "premium"), segment(b, None, "premium")),
                           (("--value", "low", "--tier", "standard"), segment(b, None, "standard", value="low"))):
        result = cluster.loyalty("query", "segment", *args, "--url", a.url)
        assert result.returncode == 0, result.stderr.decode()
        assert set(result.stdout.decode().split()) == expected, args

    # Pages of 7 through both workers: each member of the segment once, in id order, whoever is asked.
    for worker in (a, b):
        walked, cursor, pages = [], None, 0
        while True:
            page = worker.get("/segments?status=dormant&limit=7&members=1" + (f"&cursor={cursor}" if cursor else ""))
            assert len(page["customer_ids"]) <= 7 and [m["customer_id"] for m in page["members"]] == page["customer_ids"]
            walked.extend(page["members"])
            cursor, pages = page["next"], pages + 1
            if cursor is None:
                break
        ids = [member["customer_id"] for member in walked]
        assert len(ids) > 14 and ids == sorted(segment(a, "dormant")) and pages == -(-len(ids) // 7), worker.name
        for member in walked[::25]:  # the rows say what the customer's own answer says
            customer = worker.get(f"/customers/{member['customer_id']}")
            assert member == {k: customer[k] for k in member}, member
    # The CLI's CSV export walks the same pages: a row per member, the header first.
    result = cluster.loyalty("query", "segment", "--status", "dormant", "--format", "csv", "--url", a.url)
    assert result.returncode == 0, result.stderr.decode()
    rows = result.stdout.decode().splitlines()
    assert rows[0] == "customer_id,tier,status,value,points_balance,last_purchase_at"
    assert [row.split(",")[0] for row in rows[1:]] == sorted(segment(b, "dormant"))

    # A third worker on a's data dir is refused at once, naming the directory and a's PID.
    third = subprocess.run([sys.executable, "-m", "tools", "worker", "--clock", "event"], capture_output=True,
                           timeout=60, env={**cluster.env(), "LOYALTY_DATA_DIR": str(a.data_dir),
                                            "LOYALTY_WEB_PORT": str(a.web_port + 1)})
    stderr = third.stderr.decode()
    assert third.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert str(a.data_dir) in stderr and f"pid {a.proc.pid}" in stderr, stderr
    assert a.stats() == stats  # and the running worker is untouched
