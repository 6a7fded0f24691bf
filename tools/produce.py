"""Send events to customer-events: JSON lines as they are, a synthetic history, or a broadcast tick."""
from __future__ import annotations

import uuid
from typing import IO, Callable, Iterable, Iterator, Optional

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from streams.kafka_auth import kafka_python_options
from streams.settings import INPUT_TOPIC, Settings
from tools.bulk_send import BY_KEY, EVERY, BulkSender, ProduceError, record_too_large


BROADCAST_TYPES = ("clock.tick", "policy.changed")  # every partition folds them: sent to each


def tick_event(at: str) -> dict:
    """Build a clock.tick event for time `at` (RFC 3339)."""
    return {"event_id": f"tick-{at}-{uuid.uuid4().hex[:8]}", "event_type": "clock.tick",
            "customer_id": None, "occurred_at": at, "schema_version": 1, "payload": {}}


def _key_of(raw: bytes) -> tuple[Optional[bytes], bool]:
    """Return (key, is_broadcast) for a raw line: the customer_id if it parses, else no key."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, False
    if not isinstance(doc, dict):
        return None, False
    if doc.get("event_type") in BROADCAST_TYPES:
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
            **kafka_python_options(),
        )
    except KafkaError as exc:
        raise ProduceError(f"cannot reach the broker at {settings.broker}: {exc}") from None


def too_large(line: int, size: int, by_broker: bool = False) -> str:
    """Return the one-line report of a line skipped for its size."""
    where = "was refused by the broker as too large" if by_broker else "is over the broker's message size limit"
    return f"line {line}: {size:,} bytes {where}; skipped"


class EventSender:
    """Sends raw event lines to the input topic, broadcasting ticks to every partition.

    A line larger than the message size limit is skipped and reported through on_skip(line, message),
    and the lines after it are still sent: one bad line must not silently drop the rest of a file.
    """

    def __init__(self, settings: Settings, on_skip: Optional[Callable[[int, str], None]] = None) -> None:
        self.producer = open_producer(settings)
        partitions = self.producer.partitions_for(INPUT_TOPIC)
        if not partitions:
            raise ProduceError(f"topic {INPUT_TOPIC} does not exist: run `loyalty topics create` first")
        self.partitions = sorted(partitions)
        self.on_skip = on_skip
        self.sent = 0
        self.skipped: list[tuple[int, str]] = []  # (line, message)
        self._failed: list[tuple[int, int, Exception]] = []  # appended by the producer's I/O thread

    def send_raw(self, raw: bytes, line: int = 0) -> bool:
        """Send one line as it is (bad lines too, so that they reach the DLQ); False if skipped as too large."""
        key, is_tick = _key_of(raw)
        try:
            if is_tick:
                futures = [self.producer.send(INPUT_TOPIC, value=raw, partition=partition)
                           for partition in self.partitions]
            else:
                futures = [self.producer.send(INPUT_TOPIC, key=key, value=raw)]
        except MessageSizeTooLargeError:  # over max_request_size: refused before it is queued
            self._skip(line, too_large(line, len(raw)))
            return False
        for future in futures:
            future.add_errback(self._on_error, line, len(raw))
        self.sent += 1
        return True

    def _on_error(self, line: int, size: int, error: Exception) -> None:
        self._failed.append((line, size, error))

    def _skip(self, line: int, message: str) -> None:
        self.skipped.append((line, message))
        if self.on_skip is not None:
            self.on_skip(line, message)

    def close(self) -> None:
        """Flush everything sent and disconnect; report lines the broker refused as too large."""
        try:
            self.producer.flush(timeout=60)
        except KafkaError as exc:
            raise ProduceError(f"the broker did not accept every record: {exc}") from None
        finally:
            self.producer.close(timeout=5)
        refused: dict[int, int] = {}
        for line, size, error in sorted(self._failed, key=lambda failure: failure[0]):
            if not isinstance(error, (MessageSizeTooLargeError, RecordListTooLargeError)):
                raise ProduceError(f"the broker did not accept line {line}: {error}")
            refused[line] = size  # a tick is one line however many partitions refused it
        for line, size in refused.items():
            self.sent -= 1
            self._skip(line, too_large(line, size, by_broker=True))


def send_lines(settings: Settings, lines: Iterable[bytes],
               on_skip: Optional[Callable[[int, str], None]] = None) -> int:
    """Send non-blank lines, each partition's in line order, as record batches; return how many were sent.

    A line too large for the broker is skipped and reported to on_skip(line number, message); without
    on_skip, skipped lines raise ProduceError once every other line is sent.
    """
    skipped: list[tuple[int, str]] = []
    queued = 0

    def skip(number: int, message: str) -> None:
        skipped.append((number, message))
        if on_skip is not None:
            on_skip(number, message)

    def items() -> Iterator[tuple[int, Optional[bytes], Optional[int], bytes]]:
        nonlocal queued
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            key, broadcast = _key_of(line)
            if record_too_large(key, line):  # refused by the client before it is queued
                skip(number, too_large(number, len(line)))
                continue
            queued += 1
            yield number, key, EVERY if broadcast else BY_KEY, line

    sender = BulkSender(settings)
    sender.run(items())
    for number, size in sorted(sender.refused.items()):  # a tick is one line however many partitions refused it
        skip(number, too_large(number, size, by_broker=True))
    if skipped and on_skip is None:
        raise ProduceError(f"{len(skipped)} line(s) skipped, e.g. {skipped[0][1]}")
    return queued - len(sender.refused)


def send_documents(settings: Settings, docs: Iterable[dict]) -> int:
    """Send JSON documents in order; return how many were sent."""
    return send_lines(settings, (orjson.dumps(doc) for doc in docs))


def read_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Yield the lines of a binary stream."""
    yield from iter(handle.readline, b"")

