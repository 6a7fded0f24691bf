"""The due index hands out exactly the customers due, in (due time, id) order, however their times moved."""
from hypothesis import given, settings, strategies as st

from projections.partition import DueIndex

_IDS = st.sampled_from([f"c{n}" for n in range(8)])
_OPS = st.lists(st.one_of(
    st.tuples(st.just("schedule"), _IDS, st.one_of(st.none(), st.integers(0, 60))),
    st.tuples(st.just("pop"), st.just(""), st.integers(0, 60)),
), max_size=80)


def _reference_pop(due: dict[str, int], clock_ms: int) -> list[str]:
    """What pop_due must return: every customer due by the clock, by due time then id."""
    popped = sorted((ms, cid) for cid, ms in due.items() if ms <= clock_ms)
    for _, cid in popped:
        del due[cid]
    return [cid for _, cid in popped]


@settings(max_examples=500, deadline=None)
@given(_OPS)
def test_pop_due_equals_a_plain_scan(ops):
    index, due, clock = DueIndex(), {}, 0
    for op, cid, ms in ops:
        if op == "schedule":
            index.schedule(cid, None if ms is None else max(ms, clock))
            if ms is None:
                due.pop(cid, None)
            else:
                due[cid] = max(ms, clock)
        else:
            clock = max(clock, ms)
            assert index.pop_due(clock) == _reference_pop(due, clock)
        assert len(index) == len(due)
    assert index.pop_due(10**9) == _reference_pop(due, 10**9)


def test_a_later_due_time_is_not_lost_behind_its_earlier_entry():
    index = DueIndex()
    index.schedule("a", 10)
    index.schedule("b", 15)
    index.schedule("a", 20)  # later: the heap keeps the entry at 10, which must hand "a" back at 20
    assert index.pop_due(12) == []
    assert index.pop_due(15) == ["b"]
    assert index.pop_due(19) == []
    assert index.pop_due(20) == ["a"]
    assert not index.any_due(10**9)


def test_customers_put_back_within_one_pop_keep_the_order_of_their_due_times():
    index = DueIndex()
    index.schedule("a", 1)
    index.schedule("a", 9)  # put back at 9 during the pop below, after "b" at 5 and before "c" at 9 by id
    index.schedule("b", 5)
    index.schedule("c", 9)
    assert index.pop_due(9) == ["b", "a", "c"]


def test_compaction_keeps_every_due_time():
    index = DueIndex()
    for n in range(3000):  # earlier and earlier: every schedule pushes, until the heap is compacted
        index.schedule(f"c{n % 10}", 100_000 - n)
    assert len(index) == 10
    assert index.pop_due(10**9) == [f"c{n}" for n in range(9, -1, -1)]
    assert len(index) == 0
