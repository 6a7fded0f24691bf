"""Read a Kafka topic to its end: the one place that finds a log's true end and reads its records.

The end of a partition is the high watermark of a Fetch response, never ListOffsets(LATEST) alone: the
embedded broker answers that one with the base offset of the newest batch + 1, short of the log end
(docs/embedded-broker.md). On Apache Kafka both agree, so the same code serves both brokers. It also makes the
group consumer of `loyalty deliver` (it commits only what it was told to) and follows a topic for `loyalty tail`.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any, Awaitable, Callable, Iterator, Mapping, NamedTuple, Optional, TypeVar, Union

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import ConsumerRebalanceListener, KafkaConsumer

from streams.kafka_auth import aiokafka_options, kafka_python_options
from streams.settings import bootstrap_servers

_QUEUED_BATCHES = 64  # fetched batches waiting for the reader (bounds memory)
_T = TypeVar("_T")


class LogRecord(NamedTuple):
    """One record of a topic (timestamp_ms: the Kafka record's timestamp, or None)."""
    partition: int
    offset: int
    timestamp_ms: Optional[int]
    key: Optional[bytes]
    value: Optional[bytes]


async def fetch_high_watermarks(bootstrap: Union[str, list[str]], reported: Mapping[TopicPartition, int],
                                timeout_s: float = 10.0) -> dict[TopicPartition, Optional[int]]:
    """Return each partition's high watermark, fetched from its reported end - 1 (None: none within timeout_s).

    `reported` holds partitions with records (an end above 0), as ListOffsets(LATEST) gave them.
    """
    consumer = _end_reader(bootstrap)
    await consumer.start()
    try:
        return await _fetched_ends(consumer, reported, timeout_s)
    finally:
        await consumer.stop()  # not stop_quietly: inside a worker, a cancellation must go on


def high_watermarks(broker: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Return {partition: log end offset} of a topic, correct on the embedded broker and on Apache Kafka.

    An unknown topic raises KeyError (asking the embedded broker for it would create it).
    """
    return _run(lambda: _high_watermarks(bootstrap_servers(broker), topic, timeout_s))


async def _high_watermarks(servers: list[str], topic: str, timeout_s: float) -> dict[int, int]:
    """Read the reported ends of a topic's partitions, then correct them with the Fetch high watermark."""
    consumer = _end_reader(servers)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # asks for every topic's metadata, so names none to create
            raise KeyError(f"topic {topic!r} does not exist")
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        reported = await consumer.end_offsets(partitions)
        ends = {tp.partition: end for tp, end in reported.items()}
        need = {tp: end for tp, end in reported.items() if end > 0}
        if not need:
            return ends
        found = await _fetched_ends(consumer, need, timeout_s)
    finally:
        await stop_quietly(consumer)
    missing = sorted(tp.partition for tp, end in found.items() if end is None)
    if missing:
        raise TimeoutError(f"no high watermark for partitions {missing} of {topic} within {timeout_s}s")
    return {**ends, **{tp.partition: max(need[tp], end) for tp, end in found.items()}}


def _end_reader(bootstrap: Union[str, list[str]]) -> AIOKafkaConsumer:
    """Return a consumer that fetches little and waits little: it only reads the high watermarks."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            fetch_max_wait_ms=50, max_partition_fetch_bytes=64 * 1024, **aiokafka_options())


async def _fetched_ends(consumer: AIOKafkaConsumer, reported: Mapping[TopicPartition, int],
                        timeout_s: float) -> dict[TopicPartition, Optional[int]]:
    """Fetch from each reported end - 1 until every partition's high watermark is known, or timeout_s passed."""
    partitions = list(reported)
    consumer.assign(partitions)
    for tp, end in reported.items():
        consumer.seek(tp, end - 1)
    deadline = time.monotonic() + timeout_s
    while True:
        found = {tp: consumer.highwater(tp) for tp in partitions}
        if all(end is not None for end in found.values()) or time.monotonic() > deadline:
            return found
        await consumer.getmany(*partitions, timeout_ms=100, max_records=1)


def read_topic(broker: str, topic: str, timeout_s: Optional[float] = None) -> Iterator[LogRecord]:
    """Yield every record of a topic up to its end as it is now, in log order per partition."""
    return read_log(broker, topic, high_watermarks(broker, topic), timeout_s)


def read_log(broker: str, topic: str, ends: Mapping[int, Optional[int]], timeout_s: Optional[float] = None,
             starts: Optional[Mapping[int, int]] = None) -> Iterator[LogRecord]:
    """Yield every record below `ends` ({partition: end offset}), in log order per partition.

    A plain aiokafka consumer (no group, so no offsets are touched) fetches in a background thread: it reads
    much faster than kafka-python's consumer. With timeout_s, a read not done by then raises
    TimeoutError. `starts` ({partition: offset}) skips what lies before; an end of None never ends (follows
    the partition as records arrive, until the caller stops iterating).
    """
    batches: queue.Queue = queue.Queue(maxsize=_QUEUED_BATCHES)
    stop = threading.Event()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    fetch = _fetch(bootstrap_servers(broker), topic, dict(ends), batches, stop, deadline, dict(starts or {}))
    thread = threading.Thread(target=asyncio.run, args=(fetch,), daemon=True)
    thread.start()
    try:
        while (batch := batches.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            yield from batch
    finally:
        stop.set()
        thread.join(timeout=10)


async def _fetch(servers: list[str], topic: str, ends: dict[int, Optional[int]], batches: queue.Queue,
                 stop: threading.Event, deadline: Optional[float], starts: dict[int, int]) -> None:
    """Fetch records below `ends` into `batches` (lists of records), then None; an error is passed on."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
                                **aiokafka_options())
    try:
        await consumer.start()
        pending = {TopicPartition(topic, p): end for p, end in ends.items()
                   if end is None or end > starts.get(p, 0)}
        consumer.assign(list(pending))
        # From the log start unless told otherwise: retention may have removed offset 0 (the DLQ's 7 days)
        fresh = [tp for tp in pending if tp.partition not in starts]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        for tp in pending:
            if tp.partition in starts:
                consumer.seek(tp, starts[tp.partition])
        while pending and not stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(tp.partition for tp in pending)} not read to "
                                   f"their end in time")
            fetched = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in fetched.items():
                if tp not in pending:
                    continue
                end = pending[tp]
                _put(batches, [LogRecord(tp.partition, r.offset, r.timestamp if r.timestamp >= 0 else None,
                                         r.key, r.value) for r in records if end is None or r.offset < end], stop)
                if end is not None and await consumer.position(tp) >= end:
                    del pending[tp]
                    consumer.pause(tp)
        _put(batches, None, stop)
    except Exception as exc:  # handed to the reading thread, which raises it
        _put(batches, exc, stop)
    finally:
        await stop_quietly(consumer)


def group_consumer(broker: str, topic: str, group_id: str, listener: ConsumerRebalanceListener) -> KafkaConsumer:
    """Return a consumer of `topic` in group `group_id` that commits only when told to, from the earliest record.

    Earliest, not latest: a new group must not skip records, and `latest` lands inside the embedded broker's
    last batch. A short session lets a restarted member in soon after a crash (the old one is waited out).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(broker), group_id=group_id,
                             enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=10_000,
                             heartbeat_interval_ms=1_000, max_poll_records=500, **kafka_python_options())
    consumer.subscribe([topic], listener=listener)
    return consumer


def group_lag(consumer: KafkaConsumer, committed: Mapping[int, int]) -> dict[int, int]:
    """Return {partition: records past `committed`} of the assigned partitions, from the fetched high watermark."""
    lag = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)  # None until a fetch of that partition answered
        if end is not None:
            lag[tp.partition] = max(0, end - committed.get(tp.partition, 0))
    return lag


def _put(batches: queue.Queue, item: object, stop: threading.Event) -> None:
    """Queue an item unless the reader has gone away."""
    while not stop.is_set():
        try:
            batches.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer: aiokafka 0.14 re-raises the CancelledError of its own committed-offset task."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        pass


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to its end in a thread of its own, so that callers inside an event loop may use it too."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(make())
        except BaseException as exc:  # raised again in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
