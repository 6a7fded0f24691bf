"""A stop in the middle of a partition's changelog write (kill -9, or a cancelled fetch) applies nothing twice.

The worker writes a batch's outputs, then its changelog: the changed states, then the partition's clock
record with the batch's next input offset. A stop between the record batches of that write leaves some
states of the batch on the changelog without the clock record; recovery puts them in RocksDB, and the
partition is folded again from the previous batch's offset. Each state carries the input offset of the
last record of its customer folded into it, so those records are skipped for that customer alone, even when
they lie far outside the event-id memory (late events). Here the worker's pipeline and store run over a
real RocksDB, without Kafka; "recovery" writes the first records of a batch's changelog into RocksDB.
"""
from __future__ import annotations

import tempfile
from types import SimpleNamespace

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict

from projections.customer import DEFAULT_POLICY
from projections.partition import PartitionFold
from projections.state import CustomerState
from schemas.policy import Policy
from streams.metrics import LoyaltyMetrics
from streams.pipeline import OpenedFold, Pipeline, Record
from streams.settings import CLOCK_KEY
from streams.tables import TablePartitionStore
from tests.support.events import day, event_line

CUSTOMERS = [f"c{n}" for n in range(6)]


class SimulatedWorker:
    """The worker's batch step and RocksDB store for partition 0, as streams/app.py wires them."""

    def __init__(self, db: Rdict) -> None:
        self.db = db
        self.table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db, _key_index={}))
        self.stores: dict[int, TablePartitionStore] = {}
        self.pipeline = Pipeline(DEFAULT_POLICY, LoyaltyMetrics(), self, wall_clock_s=lambda: 2e9)
        self.sent: list[tuple[str, bytes]] = []  # (topic, value) of every output acknowledged

    def open_fold(self, partition: int, policy: Policy) -> OpenedFold:
        """The pipeline's fold loader, as streams/fold_loader.py opens a recovered partition."""
        store = self.stores[partition] = TablePartitionStore(self.table, partition)
        fold = PartitionFold(store, policy, clock_ms=store.clock_ms())
        folded_until = store.next_offset()
        fold.load(store.states())
        return OpenedFold(fold, folded_until)

    def fold_batch(self, records: list[Record], changelog_written: int | None = None) -> None:
        """Fold a batch and write it; with changelog_written, only that many changelog records reach Kafka."""
        out = self.pipeline.process(records)
        self.sent.extend((message.topic, message.value) for message in out)
        if 0 not in self.stores:
            return
        changelog = self.stores[0].changelog(self.pipeline.folds[0].clock_ms, self.pipeline.folded_until.get(0))
        if changelog_written is None:
            self.stores[0].save(changelog)
            return
        # The stop: recovery at the next start writes what reached the changelog into RocksDB.
        for key, value in changelog[:changelog_written]:
            self.db[key] = value

    def states(self) -> dict[str, dict]:
        return {key.decode(): CustomerState.from_bytes(value).to_dict() for key, value in self.db.items()
                if key != CLOCK_KEY}


def records_of(events: list[tuple[int, int, str]]) -> list[Record]:
    """Input records at offsets 0.. for (customer, day, kind) triples."""
    records = []
    for offset, (customer, at_day, kind) in enumerate(events):
        customer_id = CUSTOMERS[customer]
        payload = ({"order_id": f"o{offset}", "amount": "80.00"} if kind == "order.paid" else
                   {"points": 40, "reason": "goodwill"} if kind == "points.adjusted" else {})
        line = event_line(f"e{offset}", kind, customer_id, day(at_day, hours=offset % 24), **payload)
        records.append(Record(0, offset, customer_id.encode(), line))
    return records


def run(records: list[Record], cuts: list[int], stop_after: int | None, written: int) -> SimulatedWorker:
    """Fold the records in batches ending at `cuts`; stop during the changelog write of batch `stop_after`,
    then start again on the same RocksDB and fold on from the last batch fully written."""
    batches = [records[start:end] for start, end in zip([0, *cuts], [*cuts, len(records)]) if start < end]
    directory = tempfile.mkdtemp()
    db = Rdict(directory, options=Options(raw_mode=True))
    worker = SimulatedWorker(db)
    for n, batch in enumerate(batches):
        if n == stop_after:
            worker.fold_batch(batch, changelog_written=written)
            sent = worker.sent
            worker = SimulatedWorker(db)  # the restart: Kafka redelivers from the last committed batch
            worker.sent = sent
            restart_from = batches[n][0].offset
            worker.fold_batch([r for r in records if r.offset >= restart_from])
            break
        worker.fold_batch(batch)
    return worker


EVENT = st.tuples(st.integers(0, len(CUSTOMERS) - 1), st.integers(0, 120),
                  st.sampled_from(["order.paid", "points.adjusted", "customer.checked_in", "customer.visited"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(on_time=st.lists(EVENT, min_size=4, max_size=40), late=st.lists(EVENT, min_size=1, max_size=30),
       data=st.data())
def test_a_stop_inside_a_changelog_write_then_a_restart_ends_as_an_uninterrupted_run(on_time, late, data):
    # A history in time order, then a backfill of events far behind the partition clock (past 7 days).
    on_time = sorted(on_time, key=lambda e: e[1])
    late = [(customer, min(at_day, 100) // 4, kind) for customer, at_day, kind in late]
    records = records_of(on_time + [(0, 130, "customer.visited")] + late)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(records) - 1), max_size=4), label="batch ends")))
    batches = len(cuts) + 1
    stop_after = data.draw(st.integers(0, batches - 1), label="the batch whose write stops")
    written = data.draw(st.integers(0, len(CUSTOMERS)), label="changelog records written before the stop")

    uninterrupted = run(records, cuts, None, 0)
    stopped = run(records, cuts, stop_after, written)

    assert stopped.states() == uninterrupted.states()
    contents: dict[str, set[bytes]] = {}
    for topic, value in stopped.sent + uninterrupted.sent:
        doc = orjson.loads(value)
        if topic == "loyalty-ledger":
            contents.setdefault(doc["entry_id"], set()).add(value)
    assert all(len(values) == 1 for values in contents.values()), "an entry id with two contents"
    assert {orjson.loads(v)["entry_id"] for t, v in stopped.sent if t == "loyalty-ledger"} == \
        {orjson.loads(v)["entry_id"] for t, v in uninterrupted.sent if t == "loyalty-ledger"}


def test_a_late_adjustment_in_a_batch_cut_short_is_granted_once():
    """The case seen in the field: a points.adjusted far behind the clock, its state on the changelog, the
    partition's clock record not: folded again, it was granted twice (the event-id memory had forgotten it)."""
    records = records_of([(0, 1, "customer.visited"), (1, 2, "customer.visited"), (0, 100, "customer.visited"),
                          (0, 10, "points.adjusted"), (1, 11, "points.adjusted"), (0, 101, "customer.visited")])
    uninterrupted = run(records, [3], None, 0)
    stopped = run(records, [3], stop_after=1, written=2)  # both states reached the changelog, the clock not
    assert [stopped.states()[c]["points_balance"] for c in ("c0", "c1")] == [40, 40]
    assert stopped.states() == uninterrupted.states()
