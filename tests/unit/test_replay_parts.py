"""`loyalty replay`'s processes: partitions balanced by their records, and states handed back as their stored bytes."""
from __future__ import annotations

from projections.customer import DEFAULT_POLICY
from projections.state import CustomerState
from tests.support.events import event_line as raw
from tools.replay import LogRecord, ReplayResult, balanced_groups, fold_log


def test_partitions_are_spread_so_that_the_processes_read_about_as_many_records():
    ends = {0: 100, 1: 10, 2: 60, 3: 50, 4: 5}
    groups = balanced_groups(ends, 2)
    assert groups == [{0: 100, 1: 10, 4: 5}, {2: 60, 3: 50}]  # 115 and 110 records, not 165 and 60 (p % 2)
    assert balanced_groups({0: 7}, 2) == [{0: 7}, {}] and balanced_groups(ends, 1) == [ends]


def folded(log: list) -> ReplayResult:
    return fold_log(lambda partitions: [r for r in log if partitions is None or r.partition in partitions],
                    DEFAULT_POLICY)


def test_an_encoded_result_holds_the_same_states_and_totals_and_merges_like_state_objects():
    log = [LogRecord(p, n, None, f"c{n}".encode(),
                     raw(f"e{n}", "order.paid", f"c{n}", "2026-01-01T00:00:00Z", order_id=f"o{n}", amount="10.00"))
           for n, p in enumerate([0, 1, 0, 1, 1])]
    whole = folded(log)
    parts = [folded([r for r in log if r.partition == p]) for p in (0, 1)]
    merged = ReplayResult()
    for part in parts:
        part.encode()
        assert not part.states
        merged.merge(part)
    assert merged.customers == whole.customers == 5
    assert {cid: CustomerState.from_bytes(b) for cid, b in merged.encoded.items()} == whole.states
    assert merged.stats().to_dict() == whole.stats().to_dict()
