"""Send events to customer-events: JSON lines as they are, a synthetic history, or a broadcast tick."""
from __future__ import annotations

import uuid
from typing import IO, Iterable, Iterator, Optional

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.settings import INPUT_TOPIC, Settings


class ProduceError(RuntimeError):
    """The broker cannot be reached or refused the records."""


def tick_event(at: str) -> dict:
    """Build a clock.tick event for time `at` (RFC 3339)."""
    return {"event_id": f"tick-{at}-{uuid.uuid4().hex[:8]}", "event_type": "clock.tick",
            "customer_id": None, "occurred_at": at, "schema_version": 1, "payload": {}}


def _key_of(raw: bytes) -> tuple[Optional[bytes], bool]:
    """Return (key, is_tick) for a raw line: the customer_id if it parses, else no key."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, False
    if not isinstance(doc, dict):
        return None, False
    if doc.get("event_type") == "clock.tick":
        return None, True
    customer_id = doc.get("customer_id")
    return (customer_id.encode() if isinstance(customer_id, str) and customer_id else None), False


def open_producer(settings: Settings) -> KafkaProducer:
    """Connect a producer that keeps each partition in send order."""
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5,
            batch_size=256 * 1024, retries=5, max_in_flight_requests_per_connection=1,
            request_timeout_ms=15_000, max_block_ms=10_000,
            bootstrap_timeout_ms=10_000,  # kafka-python waits 30 s by default for an unreachable broker
        )
    except KafkaError as exc:
        raise ProduceError(f"cannot reach the broker at {settings.broker}: {exc}") from None


class EventSender:
    """Sends raw event lines to the input topic, broadcasting ticks to every partition."""

    def __init__(self, settings: Settings) -> None:
        self.producer = open_producer(settings)
        partitions = self.producer.partitions_for(INPUT_TOPIC)
        if not partitions:
            raise ProduceError(f"topic {INPUT_TOPIC} does not exist: run `loyalty topics create` first")
        self.partitions = sorted(partitions)
        self.sent = 0

    def send_raw(self, raw: bytes) -> None:
        """Send one line as it is (bad lines too, so that they reach the DLQ)."""
        key, is_tick = _key_of(raw)
        if is_tick:
            for partition in self.partitions:
                self.producer.send(INPUT_TOPIC, value=raw, partition=partition)
        else:
            self.producer.send(INPUT_TOPIC, key=key, value=raw)
        self.sent += 1

    def close(self) -> None:
        """Flush everything sent and disconnect."""
        try:
            self.producer.flush(timeout=60)
        except KafkaError as exc:
            raise ProduceError(f"the broker did not accept every record: {exc}") from None
        finally:
            self.producer.close(timeout=5)


def send_lines(settings: Settings, lines: Iterable[bytes]) -> int:
    """Send non-blank lines in order; return how many were sent."""
    sender = EventSender(settings)
    try:
        for line in lines:
            line = line.strip()
            if line:
                sender.send_raw(line)
    finally:
        sender.close()
    return sender.sent


def send_documents(settings: Settings, docs: Iterable[dict]) -> int:
    """Send JSON documents in order; return how many were sent."""
    return send_lines(settings, (orjson.dumps(doc) for doc in docs))


def read_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Yield the lines of a binary stream."""
    yield from iter(handle.readline, b"")

