"""Peer: a hand-written aiokafka loop running the same fold (getmany, PartitionFold, rocksdict, send, commit).

Run by `loyalty bench` as `python -m bench.peer_loop ...`; prints one JSON line with its rate.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Optional

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rocksdict import Options, Rdict, WriteBatch

from bench.peer_common import LOOP_TOPICS, PeerClock, peer_arguments, print_result
from projections.customer import DEFAULT_POLICY
from projections.effects import Outcome
from projections.partition import PartitionFold
from projections.state import CustomerState
from schemas.validate import Rejection, validate_record
from streams.gc_tuning import tune_gc
from streams.settings import INPUT_TOPIC, TOPIC_OF


class RocksStore:
    """A partition's states in rocksdict; the states a batch touched are written once, at its end."""

    def __init__(self, path: Path) -> None:
        self.db = Rdict(str(path), options=Options(raw_mode=True))
        self.cache: dict[str, CustomerState] = {}
        self.dirty: set[str] = set()

    def get(self, customer_id: str) -> Optional[CustomerState]:
        state = self.cache.get(customer_id)
        if state is None:
            raw = self.db.get(customer_id.encode())
            if raw is not None:
                state = self.cache[customer_id] = CustomerState.from_bytes(raw)
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        self.cache[customer_id] = state
        self.dirty.add(customer_id)

    def discard(self, customer_id: str) -> None:
        self.cache.pop(customer_id, None)
        self.dirty.discard(customer_id)

    def save(self) -> None:
        """Write the touched states in one batch and forget the batch's cache."""
        batch = WriteBatch(raw_mode=True)
        for customer_id in self.dirty:
            batch.put(customer_id.encode(), self.cache[customer_id].to_bytes())
        self.db.write(batch)
        self.cache.clear()
        self.dirty.clear()


async def run(broker: str, group: str, records: int, state_dir: Path) -> PeerClock:
    """Consume until `records` input records are folded, their outputs sent, states written, offsets committed."""
    consumer = AIOKafkaConsumer(INPUT_TOPIC, bootstrap_servers=broker, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    folds: dict[int, PartitionFold] = {}
    clock = PeerClock()
    seen = 0
    try:
        while seen < records:
            fetched = await consumer.getmany(timeout_ms=500, max_records=5_000)
            sends = []
            applied = 0
            for tp, batch in fetched.items():
                fold = folds.get(tp.partition)
                if fold is None:
                    fold = folds[tp.partition] = PartitionFold(RocksStore(state_dir / str(tp.partition)),
                                                               DEFAULT_POLICY)
                for record in batch:
                    event = validate_record(record.value, record.key, DEFAULT_POLICY, record.timestamp)
                    if isinstance(event, Rejection):
                        continue
                    outcome, effects = fold.apply(event, record.offset)
                    applied += outcome is Outcome.APPLIED
                    for effect in effects:
                        topic = LOOP_TOPICS.get(TOPIC_OF.get(type(effect)))
                        if topic is not None:
                            sends.append(await producer.send(topic, orjson.dumps(effect.record),
                                                             key=effect.record["customer_id"].encode(),
                                                             partition=tp.partition))
                seen += len(batch)
            await asyncio.gather(*sends)  # outputs acknowledged, then states, then offsets
            for fold in folds.values():
                fold.store.save()
            if fetched:
                await consumer.commit()
            clock.applied(applied)
    finally:
        await consumer.stop()
        await producer.stop()
    return clock


def main() -> None:
    """Run the loop on the benchmark's backlog and print its result."""
    args = peer_arguments(__doc__)
    tune_gc()  # the worker's collector settings: the comparison is of the code, not of the runtime
    started = time.monotonic()
    clock = asyncio.run(run(args.broker, args.group, args.records, Path(args.state_dir)))
    print_result(clock, started)


if __name__ == "__main__":
    main()
