"""Send many records fast: aiokafka record batches per partition, each partition's records in their order.

kafka-python's `send()` is slow per record whatever its settings (the figures are in docs/performance.md),
so a file, a synthetic history (and the bench's changelog) go out as whole record batches instead;
EventSender keeps kafka-python for the callers that send a few records at a time.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Optional

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.partitioner import murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

from streams.kafka_auth import aiokafka_options
from streams.settings import INPUT_TOPIC, Settings

MAX_REQUEST_BYTES = 1024 * 1024  # the clients' default max_request_size: a larger record is refused before sending
BATCH_BYTES = 512 * 1024  # well under Kafka's default max.message.bytes (1 MB), which applies to a whole batch
_QUEUED_LINES = 50_000  # the reader waits when this many lines wait for the sender (bounded memory)
_QUEUED_BATCHES = 2  # closed batches waiting per partition while one is in flight
_IDLE_S = 0.005  # input paused this long (a slow pipe): the open batches go out, as a producer's linger would
_POLL_S = 0.001

Line = tuple[int, Optional[bytes], bytes]  # (line number, key, value)
BY_KEY, EVERY = None, -1  # where an item goes: its key's partition, every partition, or the partition given


class ProduceError(RuntimeError):
    """The broker cannot be reached or refused the records."""


def open_bulk_producer(settings: Settings) -> Any:
    """An aiokafka producer: every replica acknowledges, no compression, batches built here."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", max_batch_size=BATCH_BYTES,
                            max_request_size=MAX_REQUEST_BYTES, request_timeout_ms=15_000,
                            **aiokafka_options())


def record_too_large(key: Optional[bytes], value: bytes) -> bool:
    """True if the record alone is over the client's request size limit (as kafka-python checks at send)."""
    if len(value) + len(key or b"") < MAX_REQUEST_BYTES - 128:  # the exact estimate only near the limit
        return False
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []) > MAX_REQUEST_BYTES


class BulkSender:
    """Reads (line number, key, where, value) items in a thread and sends them to `topic` from an asyncio loop.

    The reader never blocks the loop (stdin may be a slow pipe), and an open batch goes out as soon as the
    input pauses. A batch the broker refuses as too large is split into one record per batch and sent again
    before the partition's next batch, so each partition keeps the lines' order and only the refused lines
    are skipped. `refused` maps each such line to its size.
    """

    def __init__(self, settings: Settings, topic: str = INPUT_TOPIC) -> None:
        self.settings = settings
        self.topic = topic
        self.refused: dict[int, int] = {}
        self._failure: Optional[tuple[list[Line], Exception]] = None
        self._queue: deque = deque()
        self._room = threading.Event()
        self._read_error: Optional[BaseException] = None
        self._reading = True

    def run(self, items: Iterable[tuple[int, Optional[bytes], Optional[int], bytes]]) -> None:
        """Send every item; raise ProduceError if the broker failed, or the reader's own error."""
        reader = threading.Thread(target=self._read, args=(items,), name="produce-reader", daemon=True)
        asyncio.run(self._main(reader))
        if self._read_error is not None:
            raise self._read_error
        if self._failure is not None:
            lines, error = self._failure
            if not isinstance(error, KafkaError):  # our own fault, not the broker's: as it is
                raise error
            which = f"line {lines[0][0]}" if len(lines) == 1 else \
                f"lines {lines[0][0]} to {lines[-1][0]} (one record batch of {len(lines):,})"
            raise ProduceError(f"the broker did not accept {which}: {error}")

    def _read(self, items: Iterable) -> None:
        queue, room = self._queue, self._room
        try:
            for count, item in enumerate(items):
                queue.append(item)
                if count % 1000 == 0:
                    while len(queue) > _QUEUED_LINES and self._failure is None:
                        room.wait(0.05)
                        room.clear()
        except BaseException as exc:  # handed to the caller's thread
            self._read_error = exc
        finally:
            self._reading = False

    async def _main(self, reader: threading.Thread) -> None:
        producer = open_bulk_producer(self.settings)
        try:
            await producer.start()
        except KafkaError as exc:
            raise ProduceError(f"cannot reach the broker at {self.settings.broker}: {exc}") from None
        try:
            try:
                partitions = sorted(await producer.partitions_for(self.topic))
            except KafkaError:
                raise ProduceError(f"topic {self.topic} does not exist: run `loyalty topics create` first") from None
            outboxes = {p: asyncio.Queue(_QUEUED_BATCHES) for p in partitions}
            senders = [asyncio.create_task(self._drain(producer, p, box)) for p, box in outboxes.items()]
            reader.start()
            await self._fill(producer, partitions, outboxes)
            for box in outboxes.values():
                await box.put(None)
            await asyncio.gather(*senders)
        finally:
            self._reading = False
            self._room.set()
            await producer.stop()

    async def _fill(self, producer: Any, partitions: list[int], outboxes: dict[int, asyncio.Queue]) -> None:
        """Append queued lines to each partition's open batch; send a batch when full or when the input pauses."""
        queue, room = self._queue, self._room
        partition_of = key_partitioner(partitions)
        open_batches: dict[int, tuple[Any, list[Line]]] = {}
        idle_since: Optional[float] = None
        while True:
            if not queue:
                if not self._reading and not queue:
                    break
                now = time.monotonic()
                idle_since = idle_since or now
                if open_batches and now - idle_since >= _IDLE_S:
                    for partition, batch in open_batches.items():
                        await outboxes[partition].put(batch)
                    open_batches = {}
                await asyncio.sleep(_POLL_S)
                continue
            idle_since = None
            for _ in range(min(len(queue), 5000)):
                number, key, where, value = queue.popleft()
                targets = partitions if where == EVERY else (partition_of(key),) if where is None else (where,)
                for partition in targets:
                    batch = open_batches.get(partition)
                    if batch is None:
                        batch = open_batches[partition] = (producer.create_batch(), [])
                    if batch[0].append(key=key, value=value, timestamp=None) is None:  # full: send it
                        await outboxes[partition].put(batch)
                        batch = open_batches[partition] = (producer.create_batch(), [])
                        batch[0].append(key=key, value=value, timestamp=None)
                    batch[1].append((number, key, value))
            room.set()
            if self._failure is not None:
                return
        for partition, batch in open_batches.items():
            await outboxes[partition].put(batch)

    async def _drain(self, producer: Any, partition: int, outbox: asyncio.Queue) -> None:
        """Send a partition's batches one after another (the next only once the broker has this one)."""
        while (batch := await outbox.get()) is not None:
            if self._failure is None:
                try:
                    await self._send(producer, partition, *batch)
                except Exception as exc:  # recorded, and the outbox still drained: a full outbox would hang the filler
                    self._failure = (batch[1], exc)

    async def _send(self, producer: Any, partition: int, builder: Any, lines: list[Line]) -> None:
        builder.close()
        try:
            await (await producer.send_batch(builder, self.topic, partition=partition))
        except (MessageSizeTooLargeError, RecordListTooLargeError):
            if len(lines) == 1:
                self.refused[lines[0][0]] = len(lines[0][2])
                return
            for number, key, value in lines:  # one record a batch: only the refused lines are skipped
                single = producer.create_batch()
                single.append(key=key, value=value, timestamp=None)
                await self._send(producer, partition, single, [(number, key, value)])
        except KafkaError as exc:
            self._failure = self._failure or (lines, exc)


def key_partitioner(partitions: list[int]) -> Callable[[Optional[bytes]], int]:
    """The Kafka clients' default partitioner (murmur2 of the key), remembered per key; no key: one at random."""
    cache: dict[bytes, int] = {}

    def partition_of(key: Optional[bytes]) -> int:
        if key is None:
            return random.choice(partitions)
        partition = cache.get(key)
        if partition is None:
            partition = cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        return partition
    return partition_of
