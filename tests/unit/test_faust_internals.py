"""The rebalance fixes on Faust's consumer, without a broker: which acks may move a commit."""
from __future__ import annotations

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from streams.faust_internals import ack_fetched, commit_only_current_acks, is_current

TOPIC = "customer-events"


@pytest.fixture
def app():
    commit_only_current_acks()
    app = faust.App("test-faust-fixes", broker="kafka://127.0.0.1:1")
    app.topics.acks_enabled_for = lambda topic: True
    app.consumer_generation_id = 7
    app.flow_control.resume()
    return app


def message(offset: int, generation_id: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(TOPIC, 0), generation_id=generation_id)


def test_messages_fetched_before_a_rebalance_are_not_current(app):
    assert is_current(app, message(1, 7))
    assert not is_current(app, message(1, 6))
    app.flow_control.suspend()  # a rebalance in progress: the generation has not changed yet
    assert not is_current(app, message(1, 7))


def test_an_ack_of_a_message_from_an_earlier_generation_never_moves_the_commit(app):
    """Faust acks what its streams skip after a rebalance; those records were never folded."""
    consumer = app.consumer
    consumer._committed_offset[TP(TOPIC, 0)] = 10
    for offset in range(10, 20):
        consumer.ack(message(offset, 6))   # fetched before the rebalance, skipped after it
    consumer.ack(message(20, 7))
    assert consumer._new_offset(TP(TOPIC, 0)) is None  # 10..19 are not done: the commit stays at 10
    for offset in range(10, 20):
        consumer.ack(message(offset, 7))   # read again from the committed offset, folded, acked
    assert consumer._new_offset(TP(TOPIC, 0)) == 21


def test_an_ack_while_the_flow_is_stopped_never_moves_the_commit(app):
    consumer = app.consumer
    tracked = message(0, 7)
    consumer._unacked_messages.add(tracked)
    app.flow_control.suspend()
    assert consumer.ack(tracked) is False
    assert tracked.acked and tracked not in consumer._unacked_messages  # the revocation's wait ends
    assert not consumer._acked[TP(TOPIC, 0)]


def test_a_folded_fetch_becomes_committable_from_the_committed_offset_and_never_while_the_flow_is_stopped(app):
    consumer, tp = app.consumer, TP(TOPIC, 0)
    consumer._committed_offset[tp] = 10
    ack_fetched(consumer, {tp: (12, 20)})           # a gap at 10..11: nothing may be committed yet
    assert consumer._new_offset(tp) is None
    ack_fetched(consumer, {tp: (8, 11)})            # redelivered below the commit, then the gap
    assert consumer._new_offset(tp) == 21
    app.flow_control.suspend()                      # a rebalance began while the batch was written
    ack_fetched(consumer, {tp: (21, 30)})
    assert not consumer._acked[tp] and consumer._new_offset(tp) is None
