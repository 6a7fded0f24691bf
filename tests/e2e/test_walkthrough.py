"""The README's walk-through: a worker on the wall clock fed `produce --synthetic N --end now` shows live customers."""
from __future__ import annotations

import time

import pytest

from tests.fixtures.kafka import wait_for
from tests.support.promtext import samples, scrape, series
from tools.synthetic import synthetic_history

pytestmark = pytest.mark.broker

EVENTS, CUSTOMERS, SEED = 3000, 200, 1


def test_a_synthetic_history_ending_now_is_not_all_dormant_on_the_wall_clock(cluster):
    worker = cluster.worker("w1", clock="wall", extra_env={"LOYALTY_TICK_SECONDS": "1"})
    sent = cluster.loyalty("produce", "--synthetic", str(EVENTS), "--customers", str(CUSTOMERS), "--seed", str(SEED),
                           "--end", "now")
    assert sent.returncode == 0, sent.stderr.decode()
    produced_s = time.time()
    expected = sum(1 for doc in synthetic_history(EVENTS, CUSTOMERS, SEED) if doc["event_type"] != "clock.tick")
    wait_for(lambda: worker.stats()["events_applied"] == expected, 120, "the worker to apply every event")

    def ticked_since():  # a wall tick after the last event: the state is judged at today's date
        clocks = series(samples(scrape(worker.url)), "loyalty_partition_clock_seconds", "partition")
        return len(clocks) == 4 and min(clocks.values()) >= produced_s
    wait_for(ticked_since, 60, "a wall-clock tick on every partition")
    stats = worker.stats()
    assert stats["customers"] == CUSTOMERS
    # The same history ending in early 2026 made all 200 dormant here; ending now, about a quarter are
    # active and half dormant (53 and 102 when folded in process).
    assert stats["by_status"]["active"] >= CUSTOMERS // 5, stats
    assert stats["by_status"]["dormant"] <= CUSTOMERS * 3 // 5, stats
