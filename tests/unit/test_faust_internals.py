"""Each use of Faust's internals, without a broker, on the installed faust-streaming: what the worker relies on."""
from __future__ import annotations

import asyncio
import inspect
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

import streams.faust_internals as internals
from streams.faust_internals import (TESTED_RANGE, UntestedFaustVersion, ack_fetched, aiokafka_producer, batch_lock,
                                     check_faust_version, commit_only_current_acks, committed_offsets, is_current,
                                     key_index, limit_fetch_wait, partition_db, read_in_bulk, seek_before_resuming,
                                     serve_on_socket, serve_only_our_pages)

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "customer-events"
CHANGELOG = TP("test-customers-changelog", 0)


@pytest.fixture
def app():
    commit_only_current_acks()
    app = faust.App("test-faust-internals", broker="kafka://127.0.0.1:1")
    app.topics.acks_enabled_for = lambda topic: True
    app.consumer_generation_id = 7
    app.flow_control.resume()
    return app


def message(offset: int, generation_id: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(TOPIC, 0), generation_id=generation_id)


# --- check_faust_version ------------------------------------------------------------------------------------

def test_the_installed_faust_is_a_tested_version():
    check_faust_version()


@pytest.mark.parametrize("version, tested", [
    ("0.15.3", True), ("0.15.10", True), ("0.15.3.post1", True), ("0.15.2", False), ("0.15", False),
    ("0.16.0", False), ("0.16.0rc1", False), ("1.0.0", False), ("0.14.9", False), ("garbage", False),
])
def test_an_untested_faust_version_is_refused_in_one_line(version, tested):
    if tested:
        check_faust_version(version)
        return
    with pytest.raises(UntestedFaustVersion) as refused:
        check_faust_version(version)
    text = str(refused.value)
    assert "\n" not in text and version in text and TESTED_RANGE in text, text


def test_pyproject_pins_the_tested_range():
    pins = re.findall(r'"faust-streaming([^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [TESTED_RANGE] == [">=0.15.3,<0.16"]


# --- seek_before_resuming -----------------------------------------------------------------------------------

class RecordingConsumer:
    """Stands in for Faust's consumer during Faust's own `Recovery.on_recovery_completed`, recording the calls."""

    def __init__(self, committed: dict) -> None:
        self.committed, self.calls = committed, []

    def assignment(self) -> set:
        return set(self.committed)

    def resume_partitions(self, tps) -> None:
        self.calls.append(("resume", sorted(tps)))

    async def perform_seek(self) -> None:  # as Faust's: seek every assigned partition to its committed offset
        await self.seek_to_committed()

    async def seek_to_committed(self) -> dict:
        self.calls.append(("seek to committed",))
        return dict(self.committed)

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", tp, offset))

    def resume_flow(self) -> None:
        self.calls.append(("resume flow",))


async def recover(committed: dict) -> RecordingConsumer:
    """Run Faust's recovery completion, with the fix, on a recording consumer; return it."""
    seek_before_resuming([TOPIC])
    app = faust.App("test-recovery", broker="kafka://127.0.0.1:1")

    async def no_fetcher() -> None:
        pass
    app._fetcher.maybe_start = no_fetcher
    app.consumer = consumer = RecordingConsumer(committed)
    app.consumer_generation_id = 3
    await app.tables.recovery.on_recovery_completed(3)
    assert not {"resume_partitions", "perform_seek", "seek_to_committed"} & set(vars(consumer)), "shadows left"
    return consumer


def test_recovery_seeks_before_it_resumes_and_reads_never_committed_source_partitions_from_the_start():
    other = TP("another-topic", 0)
    consumer = asyncio.run(recover({TP(TOPIC, 0): 5, TP(TOPIC, 1): None, TP(TOPIC, 2): 0, other: None}))
    assert consumer.calls == [
        ("seek to committed",),
        ("seek", TP(TOPIC, 1), 0), ("seek", TP(TOPIC, 2), 0),  # only the source topic's partitions
        ("resume", sorted([TP(TOPIC, 0), TP(TOPIC, 1), TP(TOPIC, 2), other])),
        ("resume flow",),
    ]


def test_recovery_without_an_assignment_still_resumes():
    consumer = asyncio.run(recover({}))
    assert consumer.calls == [("resume flow",), ("resume", [])]  # no seek to wait for: resumed as it returns


# --- is_current and commit_only_current_acks ----------------------------------------------------------------

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


# --- read_in_bulk -------------------------------------------------------------------------------------------

def fetch_into(consumer, fetched: dict) -> None:
    """Make Faust's own `_wait_next_records` get `fetched` from the (absent) broker."""
    async def getmany(active_partitions, timeout):
        return dict(fetched)
    consumer._get_active_partitions = lambda: set(fetched)
    consumer._getmany = getmany


def test_a_fetch_of_the_input_topic_goes_to_the_handler_at_once_and_the_changelogs_take_fausts_path(app):
    events = [SimpleNamespace(offset=3), SimpleNamespace(offset=4)]
    fetch_into(app.consumer, {TP(TOPIC, 0): events, CHANGELOG: [SimpleNamespace(offset=9)]})
    handed = []

    async def handler(bulk: dict) -> None:
        handed.append((bulk, batch_lock.locked()))
    read_in_bulk(TOPIC, handler)
    records, _ = asyncio.run(app.consumer._wait_next_records(1.0))
    assert handed == [({TP(TOPIC, 0): events}, True)]  # folded under the lock a revocation waits for
    assert list(records) == [CHANGELOG]


def test_a_fetch_that_a_rebalance_overtook_is_not_folded_and_is_read_again(app):
    consumer = app.consumer
    fetch_into(consumer, {TP(TOPIC, 0): [SimpleNamespace(offset=3), SimpleNamespace(offset=4)]})
    handed, sought = [], []

    async def handler(bulk: dict) -> None:
        handed.append(bulk)

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))
    consumer.seek = seek
    read_in_bulk(TOPIC, handler)

    async def fetch_while_a_batch_is_written() -> None:
        async with batch_lock:  # the fetch waits for the batch in flight; a rebalance happens meanwhile
            waiting = asyncio.ensure_future(consumer._wait_next_records(1.0))
            await asyncio.sleep(0)
            app.consumer_generation_id = 8
        await waiting
    asyncio.run(fetch_while_a_batch_is_written())
    assert handed == [] and sought == [(TP(TOPIC, 0), 3)]


# --- ack_fetched and committed_offsets ----------------------------------------------------------------------

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


def test_fausts_own_commit_commits_a_folded_fetch_and_committed_offsets_reports_it(app):
    consumer, tp = app.consumer, TP(TOPIC, 0)
    consumer._committed_offset[tp] = 10
    ack_fetched(consumer, {tp: (10, 20)})
    sent = {}

    async def commit_to_broker(offsets) -> bool:
        sent.update(offsets)
        return True

    async def flush() -> None:
        pass
    consumer._commit, consumer.assignment, app.producer.flush = commit_to_broker, lambda: {tp}, flush
    assert asyncio.run(consumer.commit()) is True
    assert sent == {tp: 21} and committed_offsets(consumer) == {tp: 21}
    committed_offsets(consumer).clear()  # a copy: the report cannot change what Faust knows
    assert committed_offsets(consumer) == {tp: 21}


# --- limit_fetch_wait ---------------------------------------------------------------------------------------

def test_the_worker_consumer_waits_at_most_the_given_time_for_a_fetch(app):
    from aiokafka import AIOKafkaConsumer
    # The attribute is what aiokafka hands its fetcher when the consumer starts.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    limit_fetch_wait(250)

    async def create() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()
    assert asyncio.run(create()) == 250


# --- partition_db and key_index -----------------------------------------------------------------------------

@pytest.fixture
def table(tmp_path):
    app = faust.App("test-table", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path))
    return app.Table("customers", partitions=2, key_type=bytes, value_type=bytes, options={"driver": "rocksdict"})


def test_partition_db_is_the_rocksdb_faust_keeps_for_that_partition(table):
    table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), 1), 42)  # Faust writes partition 1
    assert partition_db(table, 1)[b"__faust\x00offset__"] == b"42"
    assert partition_db(table, 0).get(b"__faust\x00offset__") is None


def test_faust_reads_a_key_from_the_partition_the_key_index_names(table):
    partition_db(table, 0)[b"c1"] = b"stale"
    partition_db(table, 1)[b"c1"] = b"current"
    key_index(table)[b"c1"] = 1
    assert table.data._get(b"c1") == b"current"  # without the index Faust searches partition 0 first


def changelog_record(offset: int, key: bytes, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(offset=offset, key=key, value=value)


def test_changelog_records_being_recovered_are_written_at_once_and_faust_gets_only_the_last(table):
    tp = TP(table.changelog_topic.get_topic_name(), 0)
    taken = SimpleNamespace(message=SimpleNamespace(tp=tp, partition=0, offset=4, key=b"c", value=b"taken"))
    recovery = SimpleNamespace(active_tps={tp}, standby_tps=set(), active_offsets={tp: 4}, standby_offsets={},
                               tp_to_table={tp: table}, buffers={table: [taken]})  # Faust took offset 4 already
    fetched = [changelog_record(5, b"a", b"1"), changelog_record(6, b"b", b"2"), changelog_record(7, b"a", b"3")]
    other = TP(TOPIC, 0)
    records = {tp: list(fetched), other: [changelog_record(1, b"x", b"y")]}
    internals._write_changelogs(recovery, records)
    db = partition_db(table, 0)
    assert (db[b"a"], db[b"b"], db[b"c"]) == (b"3", b"2", b"taken")  # in offset order, Faust's taken record first
    assert recovery.buffers[table] == [] and recovery.active_offsets[tp] == 7
    assert db[b"__faust\x00offset__"] == b"7"  # the persisted offset, as Faust's own writes set it
    assert records == {tp: fetched[-1:], other: records[other]}  # Faust sees the last (and skips writing it)

    records = {tp: [changelog_record(6, b"b", b"stale")]}  # read again (e.g. after a seek): written already
    internals._write_changelogs(recovery, records)
    assert db[b"b"] == b"2" and recovery.active_offsets[tp] == 7


def test_a_standby_partitions_changelog_is_written_at_once_too(table):
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    recovery = SimpleNamespace(active_tps=set(), standby_tps={tp}, active_offsets={}, standby_offsets={},
                               tp_to_table={tp: table}, buffers={})
    internals._write_changelogs(recovery, {tp: [changelog_record(0, b"a", b"1")]})
    assert partition_db(table, 1)[b"a"] == b"1" and recovery.standby_offsets == {tp: 0}


# --- aiokafka_producer --------------------------------------------------------------------------------------

def test_the_aiokafka_producer_is_fausts_own(app):
    from aiokafka import AIOKafkaProducer
    from faust.exceptions import NotReady
    with pytest.raises(NotReady):
        aiokafka_producer(app)  # before Faust's producer service starts, there is none

    async def started() -> None:
        app.producer._producer = app.producer._new_producer()  # what the producer service does as it starts
        try:
            producer = aiokafka_producer(app)
            assert isinstance(producer, AIOKafkaProducer) and producer is aiokafka_producer(app)
            assert callable(producer.create_batch) and callable(producer.send_batch)
        finally:
            await app.producer._producer.stop()
    asyncio.run(started())


# --- serve_only_our_pages and serve_on_socket ---------------------------------------------------------------

def served_paths(app) -> set[str]:
    app.web.init_server()
    return {route.resource.canonical for route in app.web.web_app.router.routes()}


def test_faust_serves_none_of_its_own_pages():
    assert "/" in served_paths(faust.App("test-pages-faust", broker="kafka://127.0.0.1:1"))
    ours = faust.App("test-pages-ours", broker="kafka://127.0.0.1:1")
    serve_only_our_pages(ours)
    assert served_paths(ours) == set()


def test_fausts_web_server_listens_on_the_socket_bound_before_it():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = faust.App("test-socket", broker="kafka://127.0.0.1:1", web_bind="127.0.0.1", web_port=1)

    @app.page("/ping")
    async def ping(web, request):
        return web.json({"pong": True})

    async def serve_and_ask() -> dict:
        serve_on_socket(app, sock)
        app.web.init_server()
        await app.web.start_server()
        try:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/ping") as answer:
                return await answer.json()
        finally:
            await app.web.stop_server()
    assert asyncio.run(serve_and_ask()) == {"pong": True}
    assert sock.fileno() == -1  # closed with the server


# --- docs/faust.md -----------------------------------------------------------------------------------------

def test_the_faust_note_lists_exactly_the_needs_of_the_internals_module():
    note = (ROOT / "docs" / "faust.md").read_text()
    section = note.split("\n## Faust internals the worker relies on\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE)
    needs = [name for name, value in vars(internals).items()
             if inspect.isfunction(value) and value.__module__ == internals.__name__ and not name.startswith("_")]
    assert sorted(listed) == sorted(needs) and len(listed) == len(set(listed))
    assert TESTED_RANGE in section
