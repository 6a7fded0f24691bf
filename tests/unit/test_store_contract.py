"""The state-store contract (projections.partition.StateStore), run against every store implementation.

Each store saves in its own way; around a save, get, put and discard must behave the same, because the
fold's rollback (projections.isolation.fold_batch) relies on discard returning the saved state.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

import projections.partition
from bench.peer_loop import RocksStore
from bench.peer_quix import QuixStore
from projections.isolation import PoisonedRecord, apply_isolated, fold_batch
from projections.partition import MemoryStore, PartitionFold, SavedStateStore
from projections.state import CustomerState
from streams.tables import TablePartitionStore
from tests.support.events import day, ev
from tests.unit.test_table_store import rocksdb, table_with


class _Transaction:
    """A stand-in for a Quix partition transaction: bytes by (prefix, key)."""

    def __init__(self) -> None:
        self.data: dict[tuple[bytes, str], bytes] = {}

    def get_bytes(self, key: str, prefix: bytes) -> Optional[bytes]:
        return self.data.get((prefix, key))

    def set_bytes(self, key: str, value: bytes, prefix: bytes) -> None:
        self.data[(prefix, key)] = value


def _memory(tmp_path) -> tuple[Any, Callable[[], None]]:
    store = MemoryStore()
    return store, store.save


def _saved_bytes(tmp_path) -> tuple[Any, Callable[[], None]]:
    store = SavedStateStore()
    return store, store.save


def _table(tmp_path) -> tuple[Any, Callable[[], None]]:
    store = TablePartitionStore(table_with(rocksdb(tmp_path)), 0)
    return store, lambda: store.save(store.changelog(0))  # what the worker does once the broker has the batch


def _rocks(tmp_path) -> tuple[Any, Callable[[], None]]:
    store = RocksStore(tmp_path / "peer")
    return store, store.save


def _quix(tmp_path) -> tuple[Any, Callable[[], None]]:
    store = QuixStore()
    store.transaction = _Transaction()
    return store, store.save


STORES = {"MemoryStore": _memory, "SavedStateStore": _saved_bytes, "TablePartitionStore": _table,
          "bench RocksStore": _rocks, "bench QuixStore": _quix}


@pytest.fixture(params=sorted(STORES))
def store_and_save(request, tmp_path) -> tuple[Any, Callable[[], None]]:
    return STORES[request.param](tmp_path)


def _state(customer_id: str, balance: int) -> CustomerState:
    state = CustomerState(customer_id, 1_000)
    state.points_balance = balance
    return state


def test_an_unknown_customer_is_none_and_a_state_put_is_returned(store_and_save):
    store, save = store_and_save
    assert store.get("c1") is None
    store.put("c1", _state("c1", 5))
    assert store.get("c1").points_balance == 5
    save()
    assert store.get("c1").points_balance == 5


def test_discard_returns_a_state_changed_in_place_to_the_saved_one(store_and_save):
    store, save = store_and_save
    store.put("c1", _state("c1", 5))
    save()
    state = store.get("c1")
    state.points_balance = 99  # the fold changes states in place, then puts them
    store.put("c1", state)
    store.discard("c1")
    assert store.get("c1").points_balance == 5


def test_discard_forgets_a_customer_first_put_after_the_save_and_leaves_the_others(store_and_save):
    store, save = store_and_save
    store.put("c1", _state("c1", 5))
    save()
    store.put("c2", _state("c2", 7))
    store.discard("c2")
    store.discard("c3")  # never seen: nothing to forget
    assert (store.get("c2"), store.get("c3"), store.get("c1").points_balance) == (None, None, 5)


def test_a_new_save_is_what_discard_returns_to(store_and_save):
    store, save = store_and_save
    store.put("c1", _state("c1", 5))
    save()
    state = store.get("c1")
    state.points_balance = 6
    store.put("c1", state)
    save()
    store.discard("c1")
    assert store.get("c1").points_balance == 6


def test_a_batch_folded_again_without_its_poison_event_leaves_what_a_fold_without_it_leaves(store_and_save,
                                                                                              monkeypatch):
    monkeypatch.setattr(projections.partition, "BALANCE_LIMIT", 1000)  # an ordinary adjustment now raises
    store, save = store_and_save
    fold = PartitionFold(store)
    fold_batch(fold, lambda poisoned: apply_isolated(fold, ev("order.paid", day(0), id="e1", order_id="o1", amount="100.00"), 0))
    save()
    batch = [ev("order.paid", day(1), id="e2", order_id="o2", amount="20.00"), ev("points.adjusted", day(2), id="e3", points=5000, reason="goodwill"),
             ev("customer.registered", day(3), id="e4", customer="c2")]

    def attempt(poisoned: dict) -> list[int]:
        return [offset for offset, event in enumerate(batch, start=1)
                if offset not in poisoned and apply_isolated(fold, event, offset)]
    assert fold_batch(fold, attempt) == [1, 3]
    save()
    expected = PartitionFold(MemoryStore())
    for offset, event in ((0, ev("order.paid", day(0), id="e1", order_id="o1", amount="100.00")), (1, batch[0]), (3, batch[2])):
        expected.apply(event, offset)
    assert {cid: store.get(cid).to_dict() for cid in ("c1", "c2")} == {
        cid: expected.store.get(cid).to_dict() for cid in ("c1", "c2")}
    assert (fold.clock_ms, fold.totals.to_dict()) == (expected.clock_ms, expected.totals.to_dict())


def test_a_poison_event_raises_poisoned_record_with_its_offset(monkeypatch):
    monkeypatch.setattr(projections.partition, "BALANCE_LIMIT", 1000)
    fold = PartitionFold(MemoryStore())
    with pytest.raises(PoisonedRecord) as raised:
        apply_isolated(fold, ev("points.adjusted", day(0), id="e1", points=5000, reason="goodwill"), 7)
    assert raised.value.offset == 7 and isinstance(raised.value.error, OverflowError)


def test_every_store_implementation_is_in_the_contract_test():
    # A store is a class with put and discard (get may be inherited); each one in the packages is listed above.
    import ast  # only this test reads the sources
    from tests.unit.test_layers import project_sources
    stores = set()
    for module, source in project_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.name != "StateStore":
                methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                if {"put", "discard"} <= methods:
                    stores.add(node.name)
    assert stores == {"MemoryStore", "SavedStateStore", "TablePartitionStore", "RocksStore", "QuixStore"}
