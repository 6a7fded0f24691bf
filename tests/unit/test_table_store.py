"""The worker's RocksDB partition store: which keys are customers, and what a batch leaves unsaved."""
from __future__ import annotations

from types import SimpleNamespace

from rocksdict import Options, Rdict

from projections.state import CustomerState
from streams.settings import CLOCK_KEY
from streams.tables import TablePartitionStore


def rocksdb(path) -> Rdict:
    """One partition's RocksDB, opened as Faust opens it (raw bytes keys and values)."""
    return Rdict(str(path), options=Options(raw_mode=True))


def table_with(db: Rdict) -> SimpleNamespace:
    """A stand-in for Faust's table: one partition's RocksDB and the key index."""
    return SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db, _key_index={}))


def test_customer_ids_that_start_like_fausts_own_keys_are_loaded_after_a_restart(tmp_path):
    db = rocksdb(tmp_path)
    db[b"__faust\x00offset__"] = b"123"
    db[CLOCK_KEY] = b'{"clock_ms": 5}'
    for customer_id in ("__faust", "__faustina", "c1"):
        db[customer_id.encode()] = CustomerState(customer_id, 0).to_bytes()
    store = TablePartitionStore(table_with(db), 0)
    assert sorted(state.customer_id for state in store.states()) == ["__faust", "__faustina", "c1"]
    assert store.clock_ms() == 5


def test_a_batch_reaches_rocksdb_only_when_saved_and_discard_returns_to_the_saved_state(tmp_path):
    db = rocksdb(tmp_path)
    table = table_with(db)
    store = TablePartitionStore(table, 0)
    saved = CustomerState("c1", 0)
    store.put("c1", saved)
    store.save(store.changelog(clock_ms=7))
    changed = store.get("c1").clone()
    changed.points_balance = 50
    store.put("c1", changed)
    records = store.changelog(clock_ms=8, next_offset=42)
    assert CustomerState.from_bytes(db[b"c1"]).points_balance == 0, "nothing local before the broker has it"
    assert dict(records)[b"c1"] == changed.to_bytes() and records[-1] == (CLOCK_KEY, b'{"clock_ms":8,"next_offset":42,"clock":"event"}')
    assert store.next_offset() is None, "the offset is saved with the states, not before"
    store.discard("c1")
    assert store.get("c1").points_balance == 0
    store.save(records)
    assert store.next_offset() == 42 and store.clock_ms() == 8
    assert CustomerState.from_bytes(db[b"c1"]).points_balance == 50
    assert table.data._key_index == {b"c1": 0, CLOCK_KEY: 0}, "Faust's reads find the keys' partition"


def test_the_changelog_lists_a_batchs_customers_in_the_order_first_changed(tmp_path):
    # Not in a set's order, which follows string hashes (random per process): the same input would
    # write its changelog topic in another order on every run.
    store = TablePartitionStore(table_with(rocksdb(tmp_path)), 0)
    order = [f"c{(n * 37) % 101}" for n in range(40)]
    for customer_id in order + order[:5]:  # changed again later in the batch: still first-changed order
        store.put(customer_id, CustomerState(customer_id, 0))
    store.discard(order[3])
    expected = [customer_id for customer_id in order if customer_id != order[3]]
    assert [key.decode() for key, _ in store.changelog(clock_ms=1)[:-1]] == expected
