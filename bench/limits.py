"""What this machine can do without the worker: read the input topic, validate and fold it in process."""
from __future__ import annotations

import time
from typing import Iterable, NamedTuple

from projections.effects import Outcome
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from schemas.validate import Rejection, validate_record
from streams.kafka_log import LogRecord, read_log
from streams.settings import INPUT_TOPIC, Settings


class Limits(NamedTuple):
    """Rates of one core: records/s read and validated; customer events applied per second folded."""
    raw_read: float
    validation: float
    fold: float
    validation_fold: float
    applied: int  # customer events the fold applied (ticks, duplicates and rejections not counted)


def measure_limits(settings: Settings, ends: dict[int, int], policy: Policy) -> Limits:
    """Read the backlog once with the replay's reader, then validate and fold it in this process."""
    started = time.perf_counter()
    records = list(read_log(settings.broker, INPUT_TOPIC, ends))
    raw_read = len(records) / (time.perf_counter() - started)

    started = time.perf_counter()
    events = [(r.partition, validate_record(r.value, r.key, policy, r.timestamp_ms)) for r in records]
    validation = len(records) / (time.perf_counter() - started)

    folds: dict[int, PartitionFold] = {}
    started = time.perf_counter()
    applied = _fold(events, folds, policy)
    fold = applied / (time.perf_counter() - started)

    started = time.perf_counter()
    together = _validate_and_fold(records, {}, policy)
    validation_fold = together / (time.perf_counter() - started)
    return Limits(raw_read, validation, fold, validation_fold, applied)


def _fold(events: Iterable[tuple], folds: dict[int, PartitionFold], policy: Policy) -> int:
    """Fold validated events per partition in log order; return how many were applied."""
    applied = 0
    for partition, event in events:
        if isinstance(event, Rejection):
            continue
        fold = folds.get(partition)
        if fold is None:
            fold = folds[partition] = PartitionFold(MemoryStore(), policy)
        applied += fold.apply(event)[0] is Outcome.APPLIED
    return applied


def _validate_and_fold(records: list[LogRecord], folds: dict[int, PartitionFold], policy: Policy) -> int:
    """Validate and fold each record in one pass, as the worker's batch does; return how many were applied."""
    applied = 0
    for record in records:
        event = validate_record(record.value, record.key, policy, record.timestamp_ms)
        if isinstance(event, Rejection):
            continue
        fold = folds.get(record.partition)
        if fold is None:
            fold = folds[record.partition] = PartitionFold(MemoryStore(), policy)
        applied += fold.apply(event)[0] is Outcome.APPLIED
    return applied
