"""The worker's batch step in process, and the plainest correct Python pipeline on the same batches (CPU time).

Both take the same input records in batches of the worker's size and end with what goes to the broker
built as aiokafka record batches and the states written to RocksDB in one WriteBatch per batch.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Sequence

import orjson
from aiokafka.producer.message_accumulator import BatchBuilder
from rocksdict import Options, Rdict, WriteBatch

from projections.customer import DEFAULT_POLICY
from projections.partition import PartitionFold
from projections.state import CustomerState
from schemas.policy import Policy
from streams.gc_tuning import tune_gc
from streams.kafka_log import LogRecord
from streams.metrics import LoyaltyMetrics
from streams.pipeline import OpenedFold, Pipeline, Record
from streams.settings import DEFAULTS, PARTITION_KEYS
from streams.tables import TablePartitionStore
from tools.synthetic import synthetic_history

BATCH = DEFAULTS["batch_max_events"]
_BATCH_BYTES = 1024 * 1024  # the record batch a builder fills before a new one is started


def batches(records: Sequence[LogRecord], size: int = BATCH) -> list[list[Record]]:
    """Cut the records, in their order, into the worker's batches (built before any clock starts)."""
    as_records = [Record(r.partition, r.offset, r.key, r.value, r.timestamp_ms) for r in records]
    return [as_records[start:start + size] for start in range(0, len(as_records), size)]


class _Builders:
    """One open aiokafka record batch per topic partition, as the worker's sender fills them.

    A full or last batch is built to its bytes with `_build`, which aiokafka's sender calls on a batch
    before it goes out: the worker pays that too.
    """

    def __init__(self) -> None:
        self.open: dict[tuple, BatchBuilder] = {}
        self.built = 0

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """Append a record to its topic partition's batch, building the batch first when it is full."""
        builder = self.open.get((topic, partition))
        if builder is None:
            builder = self.open[(topic, partition)] = BatchBuilder(_BATCH_BYTES, 0)
        if builder.append(key=key, value=value, timestamp=None) is None:
            self.built += len(builder._build())
            builder = self.open[(topic, partition)] = BatchBuilder(_BATCH_BYTES, 0)
            builder.append(key=key, value=value, timestamp=None)

    def close(self) -> None:
        """Build every open batch (the end of a step's batch)."""
        for builder in self.open.values():
            self.built += len(builder._build())
        self.open.clear()


def _databases(workdir: Path, partitions: Iterable[int]) -> dict[int, Rdict]:
    """Open one RocksDB per partition under workdir, with raw bytes keys and values (as Faust opens them)."""
    return {p: Rdict(str(workdir / f"p{p}"), options=Options(raw_mode=True)) for p in partitions}


class _NewFolds:
    """The worker's fold loader on the bench's databases: each partition starts empty, its store kept for the writes."""

    def __init__(self, table: SimpleNamespace) -> None:
        self.table, self.stores = table, {}

    def open_fold(self, partition: int, policy: Policy) -> OpenedFold:
        store = self.stores[partition] = TablePartitionStore(self.table, partition)
        return OpenedFold(PartitionFold(store, policy))


def worker_step_cpu_s(steps: list[list[Record]], policy: Policy, workdir: Path) -> tuple[float, list[bytes]]:
    """CPU seconds of the worker's step over the batches (Pipeline.process, record batches, changelog, RocksDB),
    and the customers' states it saved."""
    partitions = {record.partition for step in steps for record in step}
    dbs = _databases(workdir, partitions)
    # The worker's TablePartitionStore on a stand-in for the Faust table it reaches into.
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=dbs.__getitem__, _key_index={}))
    loader = _NewFolds(table)
    pipeline = Pipeline(policy, LoyaltyMetrics(), loader, clock="event")
    started = time.process_time()
    for step in steps:
        builders = _Builders()
        for message in pipeline.process(step):
            builders.append(*message)
        for partition in {record.partition for record in step}:
            fold, store = pipeline.loaded(partition), loader.stores[partition]
            changelog = store.changelog(fold.clock_ms, pipeline.folded_until_offset(partition), fold.schedule)
            for key, value in changelog:
                builders.append("changelog", partition, key, value)
            store.save(changelog)
        builders.close()
    elapsed = time.process_time() - started
    saved = [value for db in dbs.values() for key, value in db.items() if key not in PARTITION_KEYS]
    for db in dbs.values():
        db.close()
    return elapsed, saved


def codec_us(saved: list[bytes]) -> tuple[float, float]:
    """CPU µs to decode one stored state, then to encode it again (over every state a step saved)."""
    started = time.process_time()
    states = [CustomerState.from_bytes(raw) for raw in saved]
    decoded = time.process_time()
    for state in states:
        state.to_bytes()
    encoded = time.process_time()
    return 1e6 * (decoded - started) / len(saved), 1e6 * (encoded - decoded) / len(saved)


def floor_cpu_s(steps: list[list[Record]], workdir: Path) -> float:
    """CPU seconds of the plainest correct pipeline: parse, dedupe and count, one output per event, states saved.

    A customer's state is a dict of its event ids (for dedupe) and two counters; each touched state is
    encoded once a batch and written with one WriteBatch per partition.
    """
    partitions = {record.partition for step in steps for record in step}
    dbs = _databases(workdir, partitions)
    states: dict[str, dict] = {}
    loads, dumps = orjson.loads, orjson.dumps
    started = time.process_time()
    for step in steps:
        builders = _Builders()
        touched: dict[int, dict[str, dict]] = {}
        for record in step:
            doc = loads(record.value)
            customer_id = doc.get("customer_id")
            if customer_id is None:
                continue  # a clock tick
            state = states.get(customer_id)
            if state is None:
                state = states[customer_id] = {"seen": {}, "events": 0, "points": 0}
            if doc["event_id"] in state["seen"]:
                continue
            state["seen"][doc["event_id"]] = doc["occurred_at"]
            state["events"] += 1
            state["points"] += 10
            touched.setdefault(record.partition, {})[customer_id] = state
            builders.append("ledger", record.partition, record.key, dumps(
                {"customer_id": customer_id, "event_id": doc["event_id"], "points": 10, "balance": state["points"]}))
        builders.close()
        for partition, changed in touched.items():
            batch = WriteBatch(raw_mode=True)
            for customer_id, state in changed.items():
                batch.put(customer_id.encode(), dumps(state))
            dbs[partition].write(batch)
    elapsed = time.process_time() - started
    for db in dbs.values():
        db.close()
    return elapsed


def synthetic_records(events: int, customers: int, partitions: int, seed: int) -> list[LogRecord]:
    """A synthetic history as input records (a tick to every partition), partitioned by crc32 of the key."""
    records: list[LogRecord] = []
    ends = [0] * partitions
    for doc in synthetic_history(events, customers, seed):
        key = doc["customer_id"].encode() if doc["customer_id"] else None
        for partition in [zlib.crc32(key) % partitions] if key else range(partitions):
            records.append(LogRecord(partition, ends[partition], None, key, orjson.dumps(doc)))
            ends[partition] += 1
    return records


def main() -> None:
    """Print the step's and the floor's CPU µs per record on a synthetic history (measured side by side)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="print the step's cProfile, by own time")
    args = parser.parse_args()
    tune_gc()
    steps = batches(synthetic_records(args.events, args.customers, args.partitions, seed=11))
    n = sum(len(step) for step in steps)
    with tempfile.TemporaryDirectory() as workdir:
        floor = floor_cpu_s(steps, Path(workdir, "floor"))
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        step, saved = worker_step_cpu_s(steps, DEFAULT_POLICY, Path(workdir, "step"))
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(35)
    decode, encode = codec_us(saved)
    print(f"{n:,} records: step {1e6 * step / n:.1f} µs, floor {1e6 * floor / n:.1f} µs, "
          f"floor/step {floor / step:.2f}; state decode {decode:.1f} µs, encode {encode:.1f} µs, "
          f"median {statistics.median(map(len, saved)):,.0f} B")


if __name__ == "__main__":
    main()
