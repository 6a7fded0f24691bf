"""The worker's Faust subclasses, without a broker, on the installed faust-streaming: what the worker relies on."""
from __future__ import annotations

import asyncio
import inspect
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import aiokafka
import faust
import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP

import streams.faust_app as faust_app
from streams.faust_app import LoyaltyApp, aiokafka_producer, key_index, partition_db, write_changelogs
from streams.faust_version import TESTED_RANGE, UntestedFaustVersion, check_faust_version

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "customer-events"
CHANGELOG = TP("test-customers-changelog", 0)


class RecordingFolder:
    """Stands in for the worker's folder: records each fetch it is handed, and whether the batch lock was held."""

    def __init__(self) -> None:
        self.handed: list = []
        self.consumer = None

    async def fold_and_write(self, fetched: dict) -> None:
        self.handed.append((fetched, self.consumer.batch_lock.locked()))


def loyalty_app(name: str, **options) -> LoyaltyApp:
    """A LoyaltyApp on no broker, folding TOPIC in bulk into a RecordingFolder (app.folder)."""
    app = LoyaltyApp(name, broker="kafka://127.0.0.1:1", fetch_max_wait_ms=options.pop("fetch_max_wait_ms", 100),
                     **options)
    app.folder = RecordingFolder()
    app.fold_in_bulk(app.topic(TOPIC), app.folder)
    app.folder.consumer = app.consumer
    return app


@pytest.fixture
def app():
    app = loyalty_app("test-faust-app")
    app.consumer_generation_id = 7
    app.flow_control.resume()
    return app


# --- the app selects its parts ------------------------------------------------------------------------------

def test_the_app_builds_our_transport_consumer_thread_and_web_server(app):
    assert type(app.transport) is faust_app.Transport and type(app.consumer) is faust_app.Consumer
    assert type(app.consumer._thread) is faust_app.ConsumerThread and type(app.web) is faust_app.Web
    assert app.consumer.folder is app.folder and app.consumer.input_topic == TOPIC
    assert not app.agents and [topic.get_topic_name() for topic in app.topics] == [TOPIC]  # subscribed, no agent


def test_the_consumer_is_refused_before_the_input_is_named():
    app = LoyaltyApp("test-no-input", broker="kafka://127.0.0.1:1", fetch_max_wait_ms=100)
    with pytest.raises(RuntimeError, match="fold_in_bulk"):
        app.consumer


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


# --- seek before resuming -----------------------------------------------------------------------------------

class RecordingThread:
    """Stands in for the consumer's thread during Faust's own `Recovery.on_recovery_completed`, recording the seeks
    and which assigned partitions were fetchable at each."""

    def __init__(self, consumer, committed: dict) -> None:
        self.consumer, self.committed, self.calls = consumer, committed, []

    def fetchable(self) -> list:
        return sorted(self.consumer._get_active_partitions() & set(self.committed))

    def assignment(self) -> set:
        return set(self.committed)

    async def seek_to_committed(self) -> dict:
        self.calls.append(("seek to committed", self.fetchable()))
        return dict(self.committed)

    def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", tp, offset, self.fetchable()))


async def recover(committed: dict) -> RecordingThread:
    """Run Faust's recovery completion on our consumer, its thread recording; return the thread."""
    app = loyalty_app("test-recovery")

    async def no_fetcher() -> None:
        pass
    app._fetcher.maybe_start = no_fetcher
    consumer = app.consumer
    consumer._thread = thread = RecordingThread(consumer, committed)
    app.consumer_generation_id = 3
    await app.tables.recovery.on_recovery_completed(3)
    thread.calls.append(("done", thread.fetchable()))
    return thread


def test_recovery_seeks_before_it_resumes_and_reads_never_committed_input_partitions_from_the_start():
    other = TP("another-topic", 0)
    thread = asyncio.run(recover({TP(TOPIC, 0): 5, TP(TOPIC, 1): None, TP(TOPIC, 2): 0, other: None}))
    assert thread.calls == [
        ("seek to committed", []),
        ("seek", TP(TOPIC, 1), 0, []), ("seek", TP(TOPIC, 2), 0, []),  # only the input topic's partitions
        ("done", sorted([other, TP(TOPIC, 0), TP(TOPIC, 1), TP(TOPIC, 2)])),
    ]


def test_recovery_without_an_assignment_seeks_nothing():
    assert asyncio.run(recover({})).calls == [("done", [])]


def test_changelog_partitions_resume_at_once_and_the_others_after_the_next_seek(app):
    consumer, changelog = app.consumer, TP(app.Table("customers").changelog_topic.get_topic_name(), 0)
    consumer._thread = RecordingThread(consumer, {TP(TOPIC, 0): 4, changelog: None})
    consumer.resume_partitions({TP(TOPIC, 0), changelog})
    assert consumer._get_active_partitions() == {changelog}
    asyncio.run(consumer.perform_seek())
    assert consumer._get_active_partitions() == {TP(TOPIC, 0), changelog}


# --- the input topic in bulk --------------------------------------------------------------------------------

def fetch_into(consumer, fetched: dict) -> None:
    """Make Faust's own `_wait_next_records` get `fetched` from the (absent) broker."""
    async def getmany(active_partitions, timeout):
        return dict(fetched)
    consumer._get_active_partitions = lambda: set(fetched)
    consumer._getmany = getmany


def test_a_fetch_of_the_input_topic_goes_to_the_folder_at_once_is_acked_and_the_changelogs_take_fausts_path(app):
    events = [SimpleNamespace(offset=3), SimpleNamespace(offset=4)]
    fetch_into(app.consumer, {TP(TOPIC, 0): events, CHANGELOG: [SimpleNamespace(offset=9)]})
    app.consumer._committed_offset[TP(TOPIC, 0)] = 3
    records, _ = asyncio.run(app.consumer._wait_next_records(1.0))
    assert app.folder.handed == [({TP(TOPIC, 0): events}, True)]  # folded under the lock a revocation waits for
    assert list(records) == [CHANGELOG]  # no input record reaches Faust's messages (nor its acks)
    assert app.consumer._new_offset(TP(TOPIC, 0)) == 5 and app.consumer.batch_at_stop == "none"


def test_faust_acks_messages_of_no_topic_but_the_input_whose_records_all_go_to_the_folder(app):
    """So no ack of Faust's (e.g. of messages its streams skip across a rebalance) can move a commit."""
    from faust.assignor.leader_assignor import LeaderAssignor
    assert [topic.acks for topic in app.topics] == [True]
    assert not app.Table("customers").changelog_topic.acks and not LeaderAssignor(app)._leader_topic.acks


def test_a_fetch_that_a_rebalance_overtook_is_not_folded_and_is_read_again(app):
    consumer = app.consumer
    fetch_into(consumer, {TP(TOPIC, 0): [SimpleNamespace(offset=3), SimpleNamespace(offset=4)]})
    sought = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))
    consumer.seek = seek

    async def fetch_while_a_batch_is_written() -> None:
        async with consumer.batch_lock:  # the fetch waits for the batch in flight; a rebalance happens meanwhile
            waiting = asyncio.ensure_future(consumer._wait_next_records(1.0))
            await asyncio.sleep(0)
            app.consumer_generation_id = 8
        await waiting
    asyncio.run(fetch_while_a_batch_is_written())
    assert app.folder.handed == [] and sought == [(TP(TOPIC, 0), 3)]


# --- ack_fetched and committed_offsets ----------------------------------------------------------------------

def test_a_folded_fetch_becomes_committable_from_the_committed_offset_and_never_while_the_flow_is_stopped(app):
    consumer, tp = app.consumer, TP(TOPIC, 0)
    consumer._committed_offset[tp] = 10
    consumer.ack_fetched({tp: (12, 20)})           # a gap at 10..11: nothing may be committed yet
    assert consumer._new_offset(tp) is None
    consumer.ack_fetched({tp: (8, 11)})            # redelivered below the commit, then the gap
    assert consumer._new_offset(tp) == 21
    app.flow_control.suspend()                     # a rebalance began while the batch was written
    consumer.ack_fetched({tp: (21, 30)})
    assert not consumer._acked[tp] and consumer._new_offset(tp) is None


def test_fausts_own_commit_commits_a_folded_fetch_and_committed_offsets_reports_it(app):
    consumer, tp = app.consumer, TP(TOPIC, 0)
    consumer._committed_offset[tp] = 10
    consumer.ack_fetched({tp: (10, 20)})
    sent = {}

    async def commit_to_broker(offsets) -> bool:
        sent.update(offsets)
        return True

    async def flush() -> None:
        pass
    consumer._commit, consumer.assignment, app.producer.flush = commit_to_broker, lambda: {tp}, flush
    assert asyncio.run(consumer.commit()) is True
    assert sent == {tp: 21} and consumer.committed_offsets() == {tp: 21}
    consumer.committed_offsets().clear()  # a copy: the report cannot change what Faust knows
    assert consumer.committed_offsets() == {tp: 21}


# --- the fetch wait and the end offsets ---------------------------------------------------------------------

def test_the_worker_consumer_waits_at_most_the_given_time_for_a_fetch():
    from aiokafka import AIOKafkaConsumer
    # The attribute is what aiokafka hands its fetcher when the consumer starts.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    app = loyalty_app("test-fetch-wait", fetch_max_wait_ms=250)

    async def create() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()
    assert asyncio.run(create()) == 250


@pytest.mark.parametrize("correct", [False, True])
def test_end_offsets_are_corrected_only_when_the_app_is_told_to(correct, monkeypatch):
    app = loyalty_app("test-ends", embedded_broker=correct)
    tp, asked = TP(TOPIC, 0), []

    async def reported(*partitions):
        return {tp: 5}

    async def true_ends(bootstrap, ends):
        asked.append((bootstrap, ends))
        return {tp: 7}
    app.consumer._thread.highwaters = reported
    monkeypatch.setattr(faust_app, "true_end_offsets", true_ends)
    assert asyncio.run(app.consumer.highwaters(tp)) == ({tp: 7} if correct else {tp: 5})
    assert asked == ([(["127.0.0.1:1"], {tp: 5})] if correct else [])


@pytest.mark.parametrize("embedded", [False, True])
def test_the_consumer_sends_no_leave_group_only_on_the_embedded_broker(embedded, monkeypatch):
    app = loyalty_app("test-leave", embedded_broker=embedded)
    thread, sent = app.consumer._thread, []

    async def start_a_consumer_in_generation_3(self) -> None:
        self._consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g")
        coordinator = self._consumer._coordinator = GroupCoordinator(
            self._consumer._client, self._consumer._subscription, group_id="g")
        coordinator.generation, coordinator.member_id = 3, "member-1"

        async def send_req(request):
            sent.append(type(request).__name__)
        coordinator._send_req = send_req
    monkeypatch.setattr(faust_kafka.AIOKafkaConsumerThread, "on_start", start_a_consumer_in_generation_3)

    async def start_and_leave() -> int:
        await thread.on_start()
        coordinator = thread._consumer._coordinator
        await coordinator.close()  # what the consumer's stop does
        return coordinator.generation
    assert asyncio.run(start_and_leave()) == -1  # the membership is forgotten either way
    assert sent == ([] if embedded else ["LeaveGroupRequest"])


# --- partition_db, key_index and the changelogs -------------------------------------------------------------

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
    write_changelogs(recovery, records)
    db = partition_db(table, 0)
    assert (db[b"a"], db[b"b"], db[b"c"]) == (b"3", b"2", b"taken")  # in offset order, Faust's taken record first
    assert recovery.buffers[table] == [] and recovery.active_offsets[tp] == 7
    assert db[b"__faust\x00offset__"] == b"7"  # the persisted offset, as Faust's own writes set it
    assert records == {tp: fetched[-1:], other: records[other]}  # Faust sees the last (and skips writing it)

    records = {tp: [changelog_record(6, b"b", b"stale")]}  # read again (e.g. after a seek): written already
    write_changelogs(recovery, records)
    assert db[b"b"] == b"2" and recovery.active_offsets[tp] == 7


def test_a_standby_partitions_changelog_is_written_at_once_too(table):
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    recovery = SimpleNamespace(active_tps=set(), standby_tps={tp}, active_offsets={}, standby_offsets={},
                               tp_to_table={tp: table}, buffers={})
    write_changelogs(recovery, {tp: [changelog_record(0, b"a", b"1")]})
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


# --- the web server -----------------------------------------------------------------------------------------

def served_paths(app) -> set[str]:
    app.web.init_server()
    return {route.resource.canonical for route in app.web.web_app.router.routes()}


def test_faust_serves_none_of_its_own_pages():
    assert "/" in served_paths(faust.App("test-pages-faust", broker="kafka://127.0.0.1:1"))
    assert served_paths(loyalty_app("test-pages-ours")) == set()


def test_fausts_web_server_listens_on_the_socket_bound_before_it():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = loyalty_app("test-socket", web_bind="127.0.0.1", web_port=1, web_socket=sock)

    @app.page("/ping")
    async def ping(web, request):
        return web.json({"pong": True})

    async def serve_and_ask() -> dict:
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

def _defined_here(owner) -> list[str]:
    """The functions a class (or the module) defines that are public or override Faust's (constructors aside)."""
    bases = owner.__mro__[1:] if inspect.isclass(owner) else ()
    return [name for name, value in vars(owner).items() if inspect.isfunction(value) and not name.startswith("__")
            and (not name.startswith("_") or any(name in vars(base) for base in bases))]


def test_the_faust_note_lists_exactly_what_the_app_overrides_and_adds():
    note = (ROOT / "docs" / "faust.md").read_text()
    section = note.split("\n## What the worker's app changes in Faust\n", 1)[1].split("\n## ", 1)[0]
    # Each item names one or more of them before its colon: "- `A.b`, `A.c`: why".
    listed = [name for names in re.findall(r"^- (`[^:]+`):", section, flags=re.MULTILINE)
              for name in re.findall(r"`([\w.]+)`", names)]
    defined = [name for name in _defined_here(faust_app) if vars(faust_app)[name].__module__ == faust_app.__name__]
    for name, cls in vars(faust_app).items():
        if inspect.isclass(cls) and cls.__module__ == faust_app.__name__ and \
                any(base.__module__.startswith("faust.") for base in cls.__mro__[1:]):
            defined += [f"{name}.{method}" for method in _defined_here(cls)]
    assert sorted(listed) == sorted(defined) and len(listed) == len(set(listed))
    assert TESTED_RANGE in section
