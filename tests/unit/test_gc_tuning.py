"""The worker collects garbage rarely (streams/gc_tuning.py): that is only safe while its batch step forms no cycles."""
from __future__ import annotations

import gc
import zlib

import orjson

from projections.customer import DEFAULT_POLICY
from projections.partition import MemoryStore, PartitionFold
from streams.gc_tuning import GC_THRESHOLDS, tune_gc
from streams.metrics import LoyaltyMetrics
from streams.pipeline import Pipeline, Record
from tools.synthetic import synthetic_history
from tests.support.folds import FoldsFrom

BAD = [b"", b"{not json", b"\xff\xfe", b"[]", b'{"event_type": "order.paid", "event_id": "x"}',
       b'{"event_type": "nope"}', b'{"event_id": "e", "event_type": "order.paid", "customer_id": "c", '
                                  b'"occurred_at": "2026-01-01T00:00:00Z", "payload": {"order_id": "o", "amount": "-1"}}']


def _records() -> list[Record]:
    """A synthetic history (ticks included) with every kind of bad record among it, keyed as a producer would."""
    records = []
    for offset, doc in enumerate(synthetic_history(6_000, 600, seed=5)):
        key = doc["customer_id"].encode() if doc.get("customer_id") else None
        partition = zlib.crc32(key) % 4 if key else offset % 4
        records.append(Record(partition, offset, key, orjson.dumps(doc)))
    records += [Record(0, len(records) + n, b"c", raw) for n, raw in enumerate(BAD)]
    return records


def test_the_batch_step_leaves_no_cyclic_garbage_for_the_collector():
    pipeline = Pipeline(DEFAULT_POLICY, LoyaltyMetrics(), FoldsFrom(lambda p: PartitionFold(MemoryStore(), DEFAULT_POLICY)),
                        wall_clock_s=lambda: 1_800_000_000.0)
    records = _records()
    gc.collect()
    gc.disable()
    try:
        outputs = [pipeline.process(records[start:start + 500]) for start in range(0, len(records), 500)]
        del outputs
        assert gc.collect() == 0  # everything the step dropped was freed by reference counting alone
    finally:
        gc.enable()


def test_tune_gc_collects_young_objects_less_often_than_the_default():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700
    finally:
        gc.set_threshold(*before)
