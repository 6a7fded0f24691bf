"""Every use of Faust's private API, one named function per need, for the tested faust-streaming versions only.

docs/faust.md ("Faust internals the worker relies on") lists exactly the public functions of this module (a test
compares them). Faust is imported inside the functions, when each need is installed, so that the worker runs
`check_faust_version` before any of Faust's modules: an untested version is one clear line, not an ImportError.
"""
from __future__ import annotations

import asyncio
import re
import socket
from importlib import metadata
from typing import Any, Awaitable, Callable, Iterable, NamedTuple, Optional

from aiohttp.web import SockSite

# The faust-streaming versions these functions were checked against: from TESTED_FROM up to, not including,
# TESTED_BELOW. pyproject.toml pins the same range (a test compares them).
TESTED_FROM, TESTED_BELOW = (0, 15, 3), (0, 16)
TESTED_RANGE = f">={'.'.join(map(str, TESTED_FROM))},<{'.'.join(map(str, TESTED_BELOW))}"  # as pip writes it

_ORIGINALS: dict[str, Any] = {}
_SOURCE_TOPICS: set[str] = set()

# Takes one fetch's records of the bulk topic, {TP: [aiokafka ConsumerRecord, ...]}, in offset order.
BulkHandler = Callable[[dict], Awaitable[None]]
_BULK: dict[str, Any] = {}
# Held while a fetch is folded and written; a revocation waits for it (see `read_in_bulk`).
batch_lock = asyncio.Lock()


class UntestedFaustVersion(RuntimeError):
    """The installed faust-streaming is not a version these internals were tested with (one line for the operator)."""


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: '0.15.3' -> (0, 15, 3), '0.16.0rc1' -> (0, 16, 0)."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d*", part).group()
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def check_faust_version(installed: Optional[str] = None) -> None:
    """Refuse to start on a faust-streaming outside the tested range (its internals may have moved)."""
    if installed is None:
        try:
            installed = metadata.version("faust-streaming")
        except metadata.PackageNotFoundError:
            raise UntestedFaustVersion(f"faust-streaming is not installed; install faust-streaming{TESTED_RANGE}") \
                from None
    if not TESTED_FROM <= _release(installed) < TESTED_BELOW:
        raise UntestedFaustVersion(
            f"faust-streaming {installed} is installed, but this worker is tested with faust-streaming"
            f"{TESTED_RANGE} (it relies on Faust internals, listed in docs/faust.md); install a tested version")


def seek_before_resuming(source_topics: Iterable[str]) -> None:
    """Seek the source partitions to their committed offsets (or their beginning) *before* fetching again.

    `Recovery.on_recovery_completed` resumes the partitions and only then seeks them. Records fetched in
    between were processed, then read again after the seek; some of them were never acked (seen: 3 to 7
    records of a partition after a kill -9 and restart), so the group's commits stopped at the hole and
    those events were not applied until the next restart. The records read twice were also merged into
    Faust's acked list twice, which made each commit advance by a single offset.

    A source partition without a committed offset is sought to its beginning explicitly: aiokafka's
    `seek_to_committed` leaves such a partition where the fetcher happened to be, and after a worker was
    killed before its first commit that was seen to be the log end (the events before it never applied).
    """
    from faust.tables.recovery import Recovery  # lazily: see the module docstring

    _SOURCE_TOPICS.update(source_topics)
    if "on_recovery_completed" in _ORIGINALS:
        return
    original = _ORIGINALS["on_recovery_completed"] = Recovery.on_recovery_completed

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        deferred: list = []
        seek = consumer.perform_seek
        seek_to_committed = consumer.seek_to_committed
        committed: dict = {}

        async def remember_committed() -> Any:
            offsets = await seek_to_committed()
            committed.update(offsets)
            return offsets

        async def seek_then_resume() -> None:
            committed.clear()
            await seek()
            never_committed = [tp for tp, offset in committed.items()
                               if tp.topic in _SOURCE_TOPICS and (offset is None or offset <= 0)]
            for tp in never_committed:
                # Read from the start, wherever the fetcher's reset left it (past a retention limit,
                # offset 0 is out of range and the earliest reset takes the log start).
                await consumer.seek(tp, 0)
            while deferred:
                type(consumer).resume_partitions(consumer, deferred.pop())

        consumer.resume_partitions = deferred.append   # instance attributes shadow the methods meanwhile
        consumer.perform_seek = seek_then_resume
        consumer.seek_to_committed = remember_committed
        try:
            await original(self, generation_id)
        finally:
            del consumer.resume_partitions, consumer.perform_seek, consumer.seek_to_committed
            while deferred:  # no seek happened (nothing assigned): resume as Faust would have
                consumer.resume_partitions(deferred.pop())

    Recovery.on_recovery_completed = on_recovery_completed


def is_current(app: Any, message: Any) -> bool:
    """Whether a message fetched by Faust belongs to the current assignment (its ack may count).

    A message fetched before the partitions moved can be acked afterwards (Faust acks what its
    streams skip); after a rebalance its partition is read again from the committed offset instead.
    """
    return message.generation_id == app.consumer_generation_id and app.flow_control.is_active()


def commit_only_current_acks() -> None:
    """Let only messages of the current generation, acked while the flow runs, count toward a commit.

    Faust acks the messages its streams skip across a rebalance ("otherwise the lag would increase"):
    fetched before the partitions were revoked, skipped after. With the partition assigned back, those
    acks sat on top of the newly read committed offset and the next commit moved past records that no
    worker had folded (seen: 268 events of two partitions lost in a two-worker kill test). A refused
    ack only means the record is read again from the committed offset, and folded again as a duplicate.
    """
    from faust.transport.consumer import Consumer  # lazily: see the module docstring
    from faust.types.tuples import ack_lock

    if "ack" in _ORIGINALS:
        return
    original = _ORIGINALS["ack"] = Consumer.ack

    def ack(self: Any, message: Any) -> bool:
        if is_current(self.app, message):
            return original(self, message)
        with ack_lock:  # done, but not committable: Faust's wait for unacked messages must not hang on it
            message.acked = True
            self._unacked_messages.discard(message)
        return False

    Consumer.ack = ack


def read_in_bulk(topic: str, handler: BulkHandler) -> None:
    """Hand each fetch's records of `topic` to `handler` at once, instead of one message at a time.

    Faust's path (a message object, a queue, a stream, a buffer and an ack per record) tops out near
    6,400 records/s with an empty agent body. Here the consumer's fetch loop gives the handler the
    aiokafka records as fetched; the changelog records that Faust's recovery (or a standby) reads are
    written into their table at once too (see `_write_changelogs`). The handler folds and writes the
    input's records, then calls `ack_fetched`, so an offset becomes committable only after its batch's
    outputs, changelog and local state are written. Faust's commit timer, its commits on rebalance and
    at shutdown then commit them as usual. The handler runs under `batch_lock`, which a revocation takes
    too, so that a batch being written finishes first.
    """
    from faust.transport.consumer import Consumer  # lazily: see the module docstring

    _BULK.update(topic=topic, handler=handler)
    if "wait_next_records" in _ORIGINALS:
        return
    original = _ORIGINALS["wait_next_records"] = Consumer._wait_next_records

    async def _wait_next_records(self: Any, timeout: float) -> Any:
        records, active_partitions = await original(self, timeout)
        if records:
            bulk = {tp: records.pop(tp) for tp in list(records) if tp.topic == _BULK["topic"]}
            if bulk:
                await _fold_fetch(self, bulk)
            if records:
                _write_changelogs(self.app.tables.recovery, records)
        return records, active_partitions

    Consumer._wait_next_records = _wait_next_records


class _Message(NamedTuple):
    """The fields of a changelog message that a table's `apply_changelog_batch` reads."""
    tp: Any
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


class _Event(NamedTuple):
    """A changelog record as `apply_changelog_batch` takes it (event.message)."""
    message: _Message


def _write_changelogs(recovery: Any, records: dict) -> None:
    """Write the fetched records of the changelog partitions being recovered (or kept as standbys) into their table.

    Faust's recovery takes each record through a message, a queue and a buffer (about 6,000 records/s here,
    so 1,000,000 customers took minutes). Every record of such a partition is written here, in fetch order,
    with `Table.apply_changelog_batch` (what Faust's recovery calls), and its recovered offset is set. Only
    the last record goes on to Faust, which skips writing it again (its offset is not past the recovered
    one) but checks, as after every record, whether recovery is complete. A record Faust took earlier and
    did not write yet is written first; one still in Faust's queue was written here before, so skipping it
    loses nothing.
    """
    for tp, fetched in records.items():
        if tp in recovery.active_tps:
            offsets = recovery.active_offsets
        elif tp in recovery.standby_tps:
            offsets = recovery.standby_offsets
        else:
            continue
        table = recovery.tp_to_table.get(tp)
        seen = offsets.get(tp)
        events = [_Event(_Message(tp, tp.partition, r.offset, r.key, r.value))
                  for r in fetched if seen is None or r.offset > seen]
        if table is None or not events:
            continue
        taken = recovery.buffers.get(table)
        if taken:
            table.apply_changelog_batch(taken)
            taken.clear()
        table.apply_changelog_batch(events)
        offsets[tp] = events[-1].message.offset
        records[tp] = fetched[-1:]


async def _fold_fetch(consumer: Any, bulk: dict) -> None:
    """Give a fetch to the handler if it still belongs to the current assignment, else read it again."""
    generation = consumer.app.consumer_generation_id
    async with batch_lock:
        if consumer.flow_active and consumer.app.flow_control.is_active() \
                and generation == consumer.app.consumer_generation_id:
            await _BULK["handler"](bulk)
            return
    # A rebalance began since the fetch: the position moved past these records, so move it back
    # (the rebalance's own seek to the committed offsets follows; this covers a partition it keeps).
    for tp, records in bulk.items():
        try:
            await consumer.seek(tp, records[0].offset)
        except Exception:  # noqa: BLE001 - revoked meanwhile: its next owner reads from the committed offset
            pass


def ack_fetched(consumer: Any, offsets: dict) -> None:
    """Mark records done, {TP: (first_offset, last_offset)}: committable once contiguous with the commit.

    Refused, like a single ack, when the assignment changed since the fetch (then they are read again).
    """
    from faust.types.tuples import ack_lock  # lazily: see the module docstring

    app = consumer.app
    with ack_lock:
        if not (consumer.flow_active and app.flow_control.is_active()):
            return
        for tp, (first, last) in offsets.items():
            committed = consumer._committed_offset[tp]
            start = first if committed is None else max(first, committed)
            if start > last:
                continue
            done = range(start, last + 1)
            index = consumer._acked_index[tp]
            consumer._acked[tp].extend(offset for offset in done if offset not in index)
            index.update(done)
            consumer._n_acked += len(done)


def committed_offsets(consumer: Any) -> dict:
    """Return the offsets the consumer last committed, {TP: offset} (Faust keeps no public record of them)."""
    return dict(consumer._committed_offset)


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Make the worker's consumer wait at most `max_wait_ms` for a fetch to fill (Faust hard-codes 1,500).

    Apache Kafka answers a fetch as soon as a record is there, so this only bounds idle polling; the
    embedded broker holds a fetch for the whole wait, which became the worker's produce-to-ledger latency.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # lazily: see the module docstring

    _BULK["fetch_max_wait_ms"] = max_wait_ms
    if "create_worker_consumer" in _ORIGINALS:
        return
    original = _ORIGINALS["create_worker_consumer"] = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _BULK["fetch_max_wait_ms"]  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer


def partition_db(table: Any, partition: int) -> Any:
    """Return the RocksDB of one partition of a Faust table (Faust's own writes go to the current event's)."""
    return table.data._db_for_partition(partition)


def key_index(table: Any) -> Any:
    """Return the table's key -> partition index, which Faust's reads consult before searching every partition."""
    return table.data._key_index


def aiokafka_producer(app: Any) -> Any:
    """Return the aiokafka producer behind Faust's, so that Faust's commit-time flush also covers our batches."""
    return app.producer._ensure_producer()


def serve_only_our_pages(app: Any) -> None:
    """Serve none of Faust's built-in pages, not even its index at `/` (which has no setting to turn it off).

    The web_*_enabled settings turn off the router, table, graph and stats pages; what remains is a manager
    of blueprints that Faust applies when its web server starts: replaced by an empty one.
    """
    from faust.web.base import BlueprintManager  # lazily: see the module docstring
    app.web.blueprints = BlueprintManager([])


def serve_on_socket(app: Any, sock: socket.socket) -> None:
    """Make Faust's web server listen on a socket bound already, instead of binding web_bind:web_port itself.

    The worker binds its port before it starts, and keeps it: another process cannot take the port between
    that check and Faust's bind (which would end the worker with a traceback).
    """
    web = app.web
    web._transport_handlers = {**web._transport_handlers,
                               "tcp": lambda: SockSite(web._runner, sock, ssl_context=app.conf.web_ssl_context)}
