"""The embedded broker keeps a leader that leaves a forming group, and the worker's consumer never makes one.

A two-worker catch-up test stalled on this: both workers rejoined the same generation every 5 s for minutes,
neither its leader, because the leader had sent LeaveGroup while a new member's join had turned the group to
forming (streams/faust_app.py:leave_no_group). The first test pins the broker's behaviour, so that a tansu
which no longer has it fails here and the workaround can go; the second shows the workaround ends the stall.
"""
from __future__ import annotations

import asyncio
import time

import aiokafka
import pytest

from streams.faust_app import leave_no_group
from streams.settings import bootstrap_servers
from tools.broker import EmbeddedBroker, create_topics

pytestmark = pytest.mark.broker

TOPIC, PARTITIONS, SESSION_MS = "t", 4, 6000
STALL_WATCH_S = 20  # the stall's watch: the workaround's takeover takes about 10 s (a session, then a join)
TAKEOVER_LIMIT_S = 60  # the workaround's takeover, with room for a loaded machine


def consumer(url: str) -> aiokafka.AIOKafkaConsumer:
    return aiokafka.AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap_servers(url), group_id="g",
                                     session_timeout_ms=SESSION_MS, heartbeat_interval_ms=1000,
                                     auto_offset_reset="earliest")


async def wait_until(condition, limit_s: float) -> bool:
    """Wait until condition() holds (True) or limit_s passes (False); aiokafka joins and syncs in the background."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def leader_leaves_a_forming_group(url: str, workaround: bool, watch_s: float) -> bool:
    """c1 (the leader) and c2 hold the topic; c3 joins; c1 stops before joining again. Do c2 and c3 take over?"""
    c1, c2, c3 = consumer(url), consumer(url), consumer(url)
    await c1.start()
    if workaround:
        leave_no_group(c1)
    assert await wait_until(lambda: c1.assignment(), 30), "c1 never got its partitions"
    start_c2 = asyncio.ensure_future(c2.start())
    assert await wait_until(lambda: len(c1.assignment()) == len(c2.assignment()) == PARTITIONS // 2, 30)
    await start_c2  # generation 1 now: aiokafka sends LeaveGroup from a generation above 0
    # c1 hears of no rebalance from here on, so it cannot join again (and become the formed group's leader)
    # before it leaves: whatever the timing, it leaves as the forming group's leader.
    await c1._coordinator._stop_heartbeat_task()
    start_c3 = asyncio.ensure_future(c3.start())  # its join turns the group to forming, c1 still the leader
    await asyncio.sleep(0.5)
    await c1.stop()
    try:  # c3's start returns once it has its partitions: in the stall, never
        return await wait_until(lambda: len(c2.assignment() | c3.assignment()) == PARTITIONS
                                and not c2.assignment() & c3.assignment(), watch_s)
    finally:
        start_c3.cancel()
        await asyncio.wait([start_c3, asyncio.ensure_future(c2.stop()), asyncio.ensure_future(c3.stop())], timeout=5)


@pytest.fixture
def broker(tmp_path):
    broker = EmbeddedBroker(log=tmp_path / "broker.log").start()
    try:
        create_topics(broker.url, {TOPIC: PARTITIONS})
        yield broker
    finally:
        broker.stop()


def test_the_embedded_broker_keeps_a_leader_that_left_a_forming_group(broker):
    taken_over = asyncio.run(leader_leaves_a_forming_group(broker.url, workaround=False, watch_s=STALL_WATCH_S))
    assert not taken_over, ("the broker handed c1's partitions over after its LeaveGroup: it no longer keeps a "
                            "departed leader, so streams/faust_app.py:leave_no_group may go")


def test_a_leader_that_leaves_no_group_is_replaced_after_its_session(broker):
    assert asyncio.run(leader_leaves_a_forming_group(broker.url, workaround=True, watch_s=TAKEOVER_LIMIT_S)), \
        f"c2 and c3 did not take over c1's partitions within {TAKEOVER_LIMIT_S} s"
