"""Bytes of state per customer: in a stopped worker's RocksDB store and on its changelog topic."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Iterable, NamedTuple

from rocksdict import AccessType, Options, Rdict

from streams.kafka_log import read_topic
from streams.settings import PARTITION_KEYS, Settings

_FAUST_KEY_PREFIX = b"__faust\x00"  # Faust's own bookkeeping in the table's RocksDB


class Sizes(NamedTuple):
    """Median and largest bytes per customer, and how many customers were measured."""
    median: float
    largest: int
    customers: int


def _sizes(lengths: Iterable[int]) -> Sizes:
    lengths = list(lengths)
    if not lengths:
        raise ValueError("no customer state found")
    return Sizes(statistics.median(lengths), max(lengths), len(lengths))


def _is_customer(key: bytes) -> bool:
    return key not in PARTITION_KEYS and not key.startswith(_FAUST_KEY_PREFIX)


def store_sizes(data_dirs: Iterable[Path]) -> Sizes:
    """Value bytes per customer key in the customer table's RocksDB partitions under stopped workers' data dirs."""
    lengths = []
    for data_dir in data_dirs:
        for db_dir in sorted(Path(data_dir).glob("v*/tables/customers-*.db")):  # one per partition
            db = Rdict(str(db_dir), options=Options(raw_mode=True), access_type=AccessType.read_only())
            try:
                lengths.extend(len(value) for key, value in db.items() if _is_customer(key))
            finally:
                db.close()
    return _sizes(lengths)


def changelog_sizes(settings: Settings, topic: str) -> Sizes:
    """Value bytes of each customer's latest record on the table's changelog topic (what a compaction keeps)."""
    latest: dict[bytes, int] = {}
    for record in read_topic(settings.broker, topic):
        if record.key is not None and _is_customer(record.key):
            latest[record.key] = len(record.value or b"")
    return _sizes(latest.values())
