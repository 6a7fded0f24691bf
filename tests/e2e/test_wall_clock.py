"""In wall-clock mode the leader broadcasts clock.tick, so time-based rules fire without traffic."""
from __future__ import annotations

import time

import pytest

from tests.fixtures.kafka import free_port, wait_for
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


def test_a_worker_on_the_other_clock_is_refused_in_one_line_unless_it_switches_the_group(cluster):
    first = cluster.worker("w1", clock="event")
    cluster.produce_lines([b'{"event_id":"e1","event_type":"customer.visited","customer_id":"c1",'
                           b'"occurred_at":"2026-01-01T00:00:00Z"}'])
    wait_for(lambda: first.stats()["events_applied"] == 1, 90, "the event")

    refused = cluster.loyalty("worker", "--clock", "wall", env={"LOYALTY_DATA_DIR": str(cluster.workdir / "w2"),
                                                                 "LOYALTY_WEB_PORT": str(free_port())}, timeout_s=60)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--clock event" in lines[0] and "--switch-clock" in lines[0], lines
    assert first.proc.poll() is None and first.stats()["events_applied"] == 1  # the group did not notice

    first.stop()
    moved = cluster.worker("w3", clock="wall", extra_env={"LOYALTY_SWITCH_CLOCK": "1", "LOYALTY_TICK_SECONDS": "1"})
    wait_for(lambda: moved.get("/customers/c1")["status"] == "dormant", 90, "the wall clock to judge c1 today")
    moved.stop()
    again = cluster.worker("w4", clock="event")  # the group is on the wall clock now: event is the odd one
    assert again.proc.wait(60) == 2
    assert "folds on --clock wall" in again.log()
