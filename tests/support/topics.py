"""Read whole topics in tests, through the one reader of the tools (streams/kafka_log.py)."""
from __future__ import annotations

from typing import NamedTuple, Optional

import orjson

from streams.kafka_log import high_watermarks, read_topic as read_records


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
    return sorted(Message(r.partition, r.offset, r.key, r.value) for r in read_records(broker, topic, timeout_s))
