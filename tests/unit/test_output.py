"""BatchSender hands aiokafka complete record batches: closed, in order, split only when full."""
from __future__ import annotations

import asyncio

from aiokafka.producer.message_accumulator import BatchBuilder

import streams.output
from streams.output import BatchSender
from streams.pipeline import Outgoing


class FakeProducer:
    """Records each batch sent (closed or not, and its records); acknowledges it at once."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.sent: list = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        self.sent.append((topic, partition, batch.closed(), batch.record_count()))
        future = asyncio.get_running_loop().create_future()
        future.set_result(type("Metadata", (), {"offset": len(self.sent)})())
        return future


def send(monkeypatch, messages: list, batch_size: int) -> list:
    producer = FakeProducer(batch_size)
    monkeypatch.setattr(streams.output, "aiokafka_producer", lambda app: producer)
    asyncio.run(BatchSender(app=None, table=None).send_outputs(messages))
    return producer.sent


def test_every_batch_is_closed_when_sent_so_aiokafka_does_not_hold_it_for_the_linger(monkeypatch):
    messages = [Outgoing("loyalty-ledger", p, b"c%d" % n, b"{}") for p in (0, 1) for n in range(3)]
    assert send(monkeypatch, messages, 16_384) == [("loyalty-ledger", 0, True, 3), ("loyalty-ledger", 1, True, 3)]


def test_a_full_batch_is_sent_closed_and_the_rest_follows_in_another(monkeypatch):
    messages = [Outgoing("loyalty-ledger", 0, b"c1", b"x" * 300) for _ in range(10)]
    sent = send(monkeypatch, messages, 1_000)
    assert len(sent) > 1 and all(closed for _, _, closed, _ in sent)
    assert sum(count for _, _, _, count in sent) == 10
