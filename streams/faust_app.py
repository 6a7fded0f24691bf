"""The worker's Faust app: whatever Faust is made to do lives in the subclasses below, which the app selects.

`LoyaltyApp` builds its transport (`Transport`), whose consumer (`Consumer`, with `ConsumerThread`) hands each
fetch of the input topic to the folder it was given, and its web server (`Web`). This is the one module that
uses Faust's private API; the methods it overrides were checked against the faust-streaming versions of
`streams/faust_version.py`, which the worker checks before it imports Faust. docs/faust.md lists them (a test
compares the list with the classes).
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Protocol

import faust
from aiohttp.web import SockSite
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP
from faust.types.tuples import ack_lock
from faust.web.drivers import aiohttp as faust_web

from streams.embedded import true_end_offsets
from streams.stopping import run_to_the_end


class InputFolder(Protocol):
    """What the consumer hands each fetch of the input topic to (the worker's: `streams/app.py:FetchFolder`)."""

    async def fold_and_write(self, fetched: dict) -> None:
        """Fold a fetch, {TP: [aiokafka ConsumerRecord, ...]} in offset order, and write what it changed."""


class LoyaltyApp(faust.App):
    """A Faust app whose consumer folds the input topic a fetch at a time and whose web server serves our pages only.

    fetch_max_wait_ms replaces the fetch wait Faust hard-codes (1,500); embedded_broker turns on the
    workarounds for the embedded broker (streams/embedded.py): corrected end offsets, and no LeaveGroup at a
    stop; web_socket, if given, is where the web server listens.
    """

    def __init__(self, id: str, *, fetch_max_wait_ms: int, embedded_broker: bool = False,
                 web_socket: Optional[socket.socket] = None, **options: Any) -> None:
        super().__init__(id, **options)
        self.fetch_max_wait_ms, self.embedded_broker = fetch_max_wait_ms, embedded_broker
        self.web_socket = web_socket
        self.input_topic: Optional[str] = None
        self.input_folder: Optional[InputFolder] = None

    def fold_in_bulk(self, topic: Any, folder: InputFolder) -> None:
        """Subscribe to `topic` and hand each fetch of it to `folder`: none of its records reaches a Faust stream."""
        self.topics.add(topic)
        self.input_topic, self.input_folder = topic.get_topic_name(), folder

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Consumer:
        if self.input_folder is None:
            raise RuntimeError("fold_in_bulk must name the input topic before the consumer is made")
        return self.transport.create_consumer(
            callback=self.topics.on_message, on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon,
            input_topic=self.input_topic, folder=self.input_folder)

    def _new_web(self) -> Web:
        return Web(self)


class Consumer(faust_kafka.Consumer):
    """Faust's aiokafka consumer, except that it hands each fetch of the input topic to its folder at once.

    Faust's path (a message object, a queue, a stream, a buffer and an ack per record) topped out near 6,400
    records/s with an empty agent body. Here the folder gets the aiokafka records as fetched, under
    `batch_lock` (a revocation takes it too, so a batch being written finishes first); once it has written
    the batch's outputs, changelog and local state, its offsets are marked done, and Faust's commit timer, its
    commits on rebalance and at shutdown commit them. No input record becomes a Faust message, so none is
    acked by Faust (`ack` stays Faust's: only the input topic has acks enabled, and nothing acks it).
    """

    def __init__(self, *args: Any, input_topic: str, folder: InputFolder, **kwargs: Any) -> None:
        self.input_topic, self.folder = input_topic, folder
        self.batch_lock = asyncio.Lock()
        self.batch_at_stop = "none"  # the batch in flight when the fetch loop was cancelled: finished or abandoned
        self._held: set[TP] = set()  # partitions to resume after the next seek
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> Any:
        """Fetch; fold the input topic's records at once, write the changelogs' at once, give Faust the rest."""
        records, active_partitions = await super()._wait_next_records(timeout)
        if records:
            fetched = {tp: records.pop(tp) for tp in list(records) if tp.topic == self.input_topic}
            if fetched:
                await self._fold(fetched)
            if records:
                write_changelogs(self.app.tables.recovery, records)
        return records, active_partitions

    async def _fold(self, fetched: dict) -> None:
        """Fold a fetch if the assignment it was fetched under still holds, and mark it done; else read it again."""
        app = self.app
        generation = app.consumer_generation_id
        async with self.batch_lock:
            if self._flowing() and generation == app.consumer_generation_id:
                self.batch_at_stop = "none"
                await run_to_the_end(self._fold_and_ack(fetched), self._note_batch_at_stop)
                return
        # A rebalance began since the fetch: the position moved past these records, so move it back
        # (the rebalance's own seek to the committed offsets follows; this covers a partition it keeps).
        for tp, records in fetched.items():
            try:
                await self.seek(tp, records[0].offset)
            except Exception:  # noqa: BLE001 - revoked meanwhile: its next owner reads from the committed offset
                pass

    async def _fold_and_ack(self, fetched: dict) -> None:
        """Have the folder fold and write a fetch, then mark its offsets done (run to the end at a stop)."""
        await self.folder.fold_and_write(fetched)
        self.ack_fetched({tp: (records[0].offset, records[-1].offset) for tp, records in fetched.items()})

    def _note_batch_at_stop(self, outcome: str) -> None:
        self.batch_at_stop = outcome

    def _flowing(self) -> bool:
        """Whether the flow runs (a rebalance stops it before it revokes anything)."""
        return self.flow_active and self.app.flow_control.is_active()

    def ack_fetched(self, offsets: Mapping[TP, tuple[int, int]]) -> None:
        """Mark records done, {TP: (first_offset, last_offset)}: committable once contiguous with the commit.

        Done the way Faust's `ack` marks one message; refused when the flow stopped since the fetch (a
        rebalance began: the records are read again from the committed offset).
        """
        with ack_lock:
            if not self._flowing():
                return
            for tp, (first, last) in offsets.items():
                committed = self._committed_offset[tp]
                start = first if committed is None else max(first, committed)
                if start > last:
                    continue
                done = range(start, last + 1)
                index = self._acked_index[tp]
                self._acked[tp].extend(offset for offset in done if offset not in index)
                index.update(done)
                self._n_acked += len(done)

    def committed_offsets(self) -> dict:
        """Return the offsets this consumer last committed, {TP: offset} (Faust keeps no public record of them)."""
        return dict(self._committed_offset)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Resume the changelog partitions now, the others only after the next seek (see `perform_seek`).

        Faust's recovery resumes the stream partitions and only then seeks them to their committed offsets.
        Records fetched in between were folded, then read again after the seek; some were never acked (seen:
        3 to 7 records of a partition after a kill -9 and restart), so the group's commits stopped at the hole
        and those events were not applied until the next restart.
        """
        tps = set(tps)
        held = {tp for tp in tps if not self._is_changelog_tp(tp)}
        self._held |= held
        super().resume_partitions(tps - held)

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, then resume those held for it."""
        await super().perform_seek()
        held, self._held = self._held, set()
        super().resume_partitions(held)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to the committed offsets, and an input partition never committed to its beginning.

        aiokafka leaves a partition without a committed offset where the fetcher happened to be, and after a
        worker was killed before its first commit that was seen to be the log end (the events before it never
        applied). Past a retention limit offset 0 is out of range and the earliest reset takes the log start.
        """
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if tp.topic == self.input_topic and (offset is None or offset <= 0):
                await self.seek(tp, 0)
        return committed

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Return the end offsets, corrected with the Fetch high watermark on the embedded broker.

        Faust's recovery reads a changelog up to these ends; the embedded broker's ListOffsets falls short of
        them, which silently lost the last records of a partition (streams/embedded.py).
        """
        reported = await super().highwaters(*partitions)
        if not self.app.embedded_broker:
            return reported
        return await true_end_offsets(faust_kafka.server_list(self.transport.url, self.transport.default_port),
                                      reported)


class ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, whose consumer waits at most the app's fetch_max_wait_ms for a fetch."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        """Apache Kafka answers a fetch once a record is there; the embedded broker holds it for the whole wait."""
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    async def on_start(self) -> None:
        """Start the consumer; on the embedded broker, it then never sends a LeaveGroup (leave_no_group)."""
        await super().on_start()
        if self.app.embedded_broker:
            leave_no_group(self._consumer)


def leave_no_group(consumer: Any) -> None:
    """Make a started aiokafka consumer forget its membership wherever it would send LeaveGroup (e.g. its stop).

    tansu keeps a leader that leaves while the group is forming (a member joined, the others have not joined
    again yet): no member is that leader any more, so every sync is refused and the group rejoins every few
    seconds for good. A member that just goes silent is dropped when its session ends, leader or not, so the
    rest of the group takes over its partitions one session later instead. Apache Kafka needs none of this.
    """
    coordinator = consumer._coordinator

    async def forget_membership() -> None:
        coordinator.reset_generation()  # what aiokafka's leave does after sending the request
    coordinator._maybe_leave_group = forget_membership


class Transport(faust_kafka.Transport):
    """Faust's aiokafka transport, making the worker's consumer."""
    Consumer = Consumer


class Web(faust_web.Web):
    """Faust's aiohttp web server, serving only the pages the worker registers, on the socket it was given."""

    def _enabled_blueprints(self) -> list:
        """None of Faust's pages: the web_*_enabled settings leave its index at `/`, which no setting turns off."""
        return []

    def _new_transport_tcp(self) -> Any:
        """Listen on the socket the worker bound before it started, so no other process can take the port."""
        sock = self.app.web_socket
        if sock is None:
            return super()._new_transport_tcp()
        return SockSite(self._runner, sock, ssl_context=self.app.conf.web_ssl_context)


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


def write_changelogs(recovery: Any, records: dict) -> None:
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


def partition_db(table: Any, partition: int) -> Any:
    """Return the RocksDB of one partition of a Faust table (Faust's own writes go to the current event's)."""
    return table.data._db_for_partition(partition)


def key_index(table: Any) -> Any:
    """Return the table's key -> partition index, which Faust's reads consult before searching every partition."""
    return table.data._key_index


def aiokafka_producer(app: Any) -> Any:
    """Return the aiokafka producer behind Faust's, so that Faust's commit-time flush also covers our batches."""
    return app.producer._ensure_producer()
