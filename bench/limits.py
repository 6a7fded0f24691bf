"""What this machine can do without the worker: read the input topic, validate and fold it in process."""
from __future__ import annotations

import time
from typing import Iterable, NamedTuple

from projections.effects import Outcome
from projections.isolation import Poisoned, apply_isolated, fold_batch
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from schemas.validate import Rejection, validate_record
from streams.kafka_log import LogRecord, read_log
from streams.settings import INPUT_TOPIC, Settings


APPLIED = Outcome.APPLIED


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
    events = [(r.partition, r.offset, validate_record(r.value, r.key, policy, r.timestamp_ms)) for r in records]
    validation = len(records) / (time.perf_counter() - started)

    by_partition = _by_partition(events)  # before the clock starts: the fold takes each partition's log in order
    started = time.perf_counter()
    applied = sum(_fold(part, policy) for part in by_partition.values())
    fold = applied / (time.perf_counter() - started)

    by_partition = _by_partition(records)
    started = time.perf_counter()
    together = sum(_validate_and_fold(part, policy) for part in by_partition.values())
    validation_fold = together / (time.perf_counter() - started)
    return Limits(raw_read, validation, fold, validation_fold, applied)


def _by_partition(items: Iterable) -> dict[int, list]:
    """Group records or (partition, offset, event) tuples by partition, in log order."""
    groups: dict[int, list] = {}
    for item in items:
        groups.setdefault(item[0], []).append(item)
    return groups


def _fold(events: list[tuple], policy: Policy) -> int:
    """Fold a partition's validated events as the worker does (isolating a poison event); return how many applied."""
    fold = PartitionFold(MemoryStore(), policy)

    def attempt(poisoned: Poisoned) -> int:
        applied = 0
        for _, offset, event in events:
            if isinstance(event, Rejection) or offset in poisoned:
                continue
            applied += apply_isolated(fold, event, offset)[0] is APPLIED
        return applied
    return fold_batch(fold, attempt)


def _validate_and_fold(records: list[LogRecord], policy: Policy) -> int:
    """Validate and fold a partition's records in one pass, as the worker's batch does; return how many applied."""
    fold = PartitionFold(MemoryStore(), policy)

    def attempt(poisoned: Poisoned) -> int:
        applied = 0
        for record in records:
            event = validate_record(record.value, record.key, fold.policy, record.timestamp_ms)
            if isinstance(event, Rejection) or record.offset in poisoned:
                continue
            applied += apply_isolated(fold, event, record.offset)[0] is APPLIED
        return applied
    return fold_batch(fold, attempt)
