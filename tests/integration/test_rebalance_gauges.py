"""Across a rebalance a worker keeps exporting the clock and lag of the partitions it gets back, loads the new
ones without waiting for a record, and its stop line counts the events of the partitions it holds."""
from __future__ import annotations

import pytest

from tests.fixtures.kafka import wait_for
from tests.integration.oracles import distinct_valid_events, history, wait_until_applied
from tests.support.promtext import samples, scrape, series

pytestmark = pytest.mark.broker
PER_PARTITION = ("loyalty_partition_clock_seconds", "loyalty_consumer_lag", "loyalty_partition_end_offset")


def lines_with(log: str, event: str) -> list[dict[str, str]]:
    """The key=value fields of each log line of this lifecycle event."""
    return [dict(part.split("=", 1) for part in line.split() if "=" in part)
            for line in log.splitlines() if f"loyalty: {event} " in line]


def gauges(worker) -> dict[str, dict[str, float]]:
    """The per-partition gauges of a worker's /metrics: name -> partition -> value."""
    scraped = samples(scrape(worker.url))
    return {name: series(scraped, name, "partition") for name in PER_PARTITION}


def test_gauges_stay_across_a_rebalance_and_the_stop_line_counts_the_partitions_held(cluster):
    a = cluster.worker("a")
    lines = history(1500, 120, seed=5)
    cluster.produce_lines(lines)
    applied = distinct_valid_events(lines)
    wait_until_applied(a, applied)
    before = wait_for(lambda: (lambda g: g if all(len(g[n]) == 4 for n in PER_PARTITION) else None)(gauges(a)),
                      30, "worker a to export the gauges of its 4 partitions")

    b = cluster.worker("b")  # no record is sent from here on: nothing but the rebalance moves the gauges

    # Only /metrics is read until a stops: /stats and /health would load the folds themselves.
    def split():
        ga, gb = gauges(a), gauges(b)
        kept, taken = set(ga[PER_PARTITION[0]]), set(gb[PER_PARTITION[0]])
        if kept and taken and not kept & taken and kept | taken == {"0", "1", "2", "3"} \
                and all(set(ga[n]) == kept and set(gb[n]) == taken for n in PER_PARTITION):
            return ga, gb
        return None
    after_a, after_b = wait_for(split, 90, "each worker to export the gauges of its own partitions only")
    for name in PER_PARTITION:
        for partition, was in before[name].items():
            now = after_a[name].get(partition, after_b[name].get(partition))
            assert now == was, (name, partition, was, now)  # the same clock, lag (0) and end, whoever holds it
    held_by_b = b.get("/stats?scope=local")["events_applied"]

    a.stop()
    stopped = lines_with(a.log(), "worker stopped")
    assert len(stopped) == 1, a.log()[-2000:]
    assert stopped[0]["events_applied"] == str(applied - held_by_b) != "0"
    assert stopped[0]["partitions"] == ",".join(sorted(after_a[PER_PARTITION[0]])), stopped[0]
