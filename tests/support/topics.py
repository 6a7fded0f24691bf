"""Read whole output topics from the beginning, counted by the partitions' high watermarks (never end_offsets())."""
from __future__ import annotations

import time
from typing import NamedTuple, Optional

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.embedded import high_watermarks
from tools.broker import bootstrap_servers


class Message(NamedTuple):
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes

    def json(self) -> dict:
        return orjson.loads(self.value)


def record_count(broker: str, topic: str) -> int:
    """Return how many records the topic holds (sum of its partitions' high watermarks)."""
    return sum(high_watermarks(broker, topic).values())


def read_topic(broker: str, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Return every record of the topic, in partition then offset order."""
    ends = high_watermarks(broker, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(broker), group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=50)
    try:
        tps = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
        messages: list[Message] = []
        if not tps:
            return messages
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        wanted = sum(ends[tp.partition] for tp in tps)
        deadline = time.monotonic() + timeout_s
        while len(messages) < wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(messages)} of {wanted} records of {topic} in {timeout_s}s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    if r.offset < ends[tp.partition]:
                        messages.append(Message(tp.partition, r.offset, r.key, r.value))
        return sorted(messages)
    finally:
        consumer.close()
