"""Two workers in one group split the partitions; one is killed; the survivor takes over its partitions and
state, and the final state equals a single-worker run."""
from __future__ import annotations

import orjson
import pytest

from schemas.policy import STATUSES
from tests.fixtures.kafka import wait_for
from tests.integration.oracles import (
    assert_equals_uninterrupted_run, customers_in, distinct_valid_events, history, split, wait_until_applied,
)

pytestmark = pytest.mark.broker


def local_customers(worker) -> set[str]:
    """Return the ids of the customers held by this worker's own partitions."""
    ids = set()
    for status in STATUSES:
        ids.update(worker.get(f"/segments?status={status}&scope=local")["customer_ids"])
    return ids


def test_two_workers_split_the_partitions_and_the_survivor_takes_over(cluster, tmp_path):
    lines = history(3000, 200, seed=21)
    before, after = split(lines, 0.6)
    a, b = cluster.worker("a"), cluster.worker("b")
    assert len({a.web_port, b.web_port}) == 2 and a.data_dir != b.data_dir
    cluster.produce_lines(before)
    applied = distinct_valid_events(before)

    def both_own_partitions():
        local_a, local_b = a.get("/stats?scope=local"), b.get("/stats?scope=local")
        total = a.stats()
        return (local_a["customers"] > 0 and local_b["customers"] > 0
                and local_a["customers"] + local_b["customers"] == total["customers"]
                and local_a["events_applied"] + local_b["events_applied"] == total["events_applied"] == applied
                and b.stats() == total)
    wait_for(both_own_partitions, 90, "both workers to own partitions and to have applied the first part")

    # Every worker answers for the whole group: totals are gathered, a customer is routed to its owner.
    held_by_a, held_by_b = local_customers(a), local_customers(b)
    assert held_by_a and held_by_b and not held_by_a & held_by_b
    assert held_by_a | held_by_b == customers_in(before)
    stats = a.stats()
    assert stats == b.stats() and stats["customers"] == len(held_by_a | held_by_b)
    customer_id = sorted(held_by_b)[0]
    assert a.get(f"/customers/{customer_id}") == b.get(f"/customers/{customer_id}")
    result = cluster.loyalty("query", "customer", customer_id, "--json", "--url", a.url)
    assert result.returncode == 0, result.stderr.decode()
    assert orjson.loads(result.stdout)["customer_id"] == customer_id

    b.kill()
    cluster.produce_lines(after)  # sent while the group has not noticed yet
    wait_until_applied(a, distinct_valid_events(lines), timeout_s=120)
    wait_for(lambda: a.get("/stats?scope=local") == a.stats(), 30, "the survivor to own every partition")
    assert local_customers(a) == customers_in(lines)

    assert_equals_uninterrupted_run(cluster, a, lines, tmp_path / "replay")
