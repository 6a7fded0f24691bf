"""In wall-clock mode the leader broadcasts clock.tick, so time-based rules fire without traffic."""
from __future__ import annotations

import time

import pytest

from tests.fixtures.kafka import wait_for
from tests.support.promtext import samples, scrape, series

pytestmark = pytest.mark.broker

DAY_S = 86_400


def test_the_leader_ticks_every_partition_with_the_wall_time_and_time_rules_fire(cluster):
    # A customer whose only interaction was 200 days ago: the first wall tick makes them dormant.
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 200 * DAY_S))
    cluster.produce_lines([b'{"event_id":"e1","event_type":"customer.visited","customer_id":"c1",'
                           b'"occurred_at":"' + old.encode() + b'"}'])
    worker = cluster.worker("w1", clock="wall", extra_env={"LOYALTY_TICK_SECONDS": "1"})
    started_s = time.time()

    def ticked_everywhere():
        clocks = series(samples(scrape(worker.url)), "loyalty_partition_clock_seconds", "partition")
        return clocks if len(clocks) == 4 and min(clocks.values()) >= started_s - 5 else None

    clocks = wait_for(ticked_everywhere, 90, "a wall-clock tick on every partition")
    assert max(clocks.values()) <= time.time() + 1
    customer = wait_for(lambda: worker.get("/customers/c1"), 30, "the customer")
    assert customer["status"] == "dormant"  # 200 days without an interaction, judged at the wall time


def test_in_event_clock_mode_no_tick_is_sent(cluster):
    worker = cluster.worker("w1", clock="event", extra_env={"LOYALTY_TICK_SECONDS": "1"})
    cluster.produce_lines([b'{"event_id":"e1","event_type":"customer.visited","customer_id":"c1",'
                           b'"occurred_at":"2026-01-01T00:00:00Z"}'])
    wait_for(lambda: worker.stats()["events_applied"] == 1, 90, "the event")
    time.sleep(3)  # three tick intervals: a ticker, if any, would have moved the clock to the wall time
    clocks = series(samples(scrape(worker.url)), "loyalty_partition_clock_seconds", "partition")
    assert max(clocks.values()) < time.time() - 300 * DAY_S
