"""The fault test that sends every event twice keeps its oracle true: each copy arrives while it is a duplicate."""
from __future__ import annotations

import random
from collections import defaultdict

import orjson

from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms
from schemas.validate import Rejection, validate_record
from tests.integration.oracles import distinct_valid_events, history, key_of, twice_and_shuffled
from tools.bulk_send import key_partitioner

PARTITIONS = [0, 1, 2, 3]


def applied_when_folded(lines: list[bytes]) -> int:
    """Fold the lines per partition as `loyalty produce` spreads them; return the events applied."""
    policy = Policy()
    partition_of = key_partitioner(PARTITIONS)
    logs: dict[int, list] = defaultdict(list)
    for offset, line in enumerate(lines):
        key = key_of(line)
        for partition in PARTITIONS if key is None else [partition_of(key)]:  # ticks go to every partition
            logs[partition].append((offset, key, line))
    applied = 0
    for records in logs.values():
        fold = PartitionFold(MemoryStore(), policy)
        for offset, key, value in records:
            event = validate_record(value, key, policy)
            if not isinstance(event, Rejection):
                fold.apply(event, offset)
        applied += fold.totals.events_applied
    return applied


def test_a_copy_comes_before_any_line_past_its_event_id_window():
    lines = [orjson.dumps({"event_id": f"e{n}", "event_type": "customer.visited", "customer_id": f"c{n}",
                           "occurred_at": format_ms(n * 8 * DAY_MS), "schema_version": 1, "payload": {}})
             for n in range(40)]
    sent, _ = twice_and_shuffled(lines, random.Random(1))
    assert sent == [line for line in lines for _ in range(2)]


def test_the_engine_applies_each_event_of_the_twice_sent_history_once():
    # This seed's history once had 30 lines spanning more than event_id_days: 40 copies were applied again.
    rng = random.Random(1316606885)
    lines, _ = twice_and_shuffled(history(6000, 300, seed=rng.randrange(1000)), rng)
    assert applied_when_folded(lines) == distinct_valid_events(lines)
