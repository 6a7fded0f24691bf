"""The customer table's partitions as state stores: RocksDB reads, batched writes and changelog records."""
from __future__ import annotations

from typing import Any, Iterator, Optional

import orjson

from projections.state import CustomerState
from streams.settings import CLOCK_KEY

# Faust keeps its own bookkeeping (persisted changelog offsets) under keys with this prefix.
_FAUST_KEY_PREFIX = b"__faust"


class TablePartitionStore:
    """One partition of the Faust customer table, with a write-back cache flushed once per batch.

    Faust's own `table[key] = value` writes to the partition of the *current event* and sends one
    changelog record per write; a batch spans partitions and writes a customer many times, so we
    write the partition's RocksDB directly and return one changelog record per customer per batch,
    for the customer's own changelog partition (Faust's recovery and standby replicas read them
    as if Faust had written them).
    """

    def __init__(self, table: Any, partition: int, cached_states: int = 20_000) -> None:
        self.table = table
        self.partition = partition
        # States stay cached across batches: this worker is the partition's only writer while it owns it
        # (the store is dropped on revocation), and reading a busy customer's JSON again costs more than
        # anything else in a batch. The cache is emptied after a flush once it holds too many.
        self._cache: dict[str, CustomerState] = {}
        self._cached_states = cached_states
        self._dirty: set[str] = set()

    @property
    def _db(self) -> Any:
        return self.table.data._db_for_partition(self.partition)

    def get(self, customer_id: str) -> Optional[CustomerState]:
        """Return a customer's state from the batch cache or RocksDB."""
        state = self._cache.get(customer_id)
        if state is None:
            raw = self._db.get(customer_id.encode())
            if raw is None:
                return None
            state = self._cache[customer_id] = CustomerState.from_bytes(raw)
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        """Keep a new state until the batch is flushed."""
        self._cache[customer_id] = state
        self._dirty.add(customer_id)

    def flush(self, clock_ms: int) -> list[tuple[bytes, bytes]]:
        """Write the batch's states and the partition clock; return the changelog records, clock last."""
        db = self._db
        key_index = self.table.data._key_index
        changelog = []
        for customer_id in self._dirty:
            key, value = customer_id.encode(), self._cache[customer_id].to_bytes()
            db[key] = value
            key_index[key] = self.partition
            changelog.append((key, value))
        clock = orjson.dumps({"clock_ms": clock_ms})
        db[CLOCK_KEY] = clock
        changelog.append((CLOCK_KEY, clock))
        self._dirty.clear()
        if len(self._cache) > self._cached_states:
            self._cache.clear()
        return changelog

    def clock_ms(self) -> int:
        """Return the partition clock stored with the states (0 if none)."""
        raw = self._db.get(CLOCK_KEY)
        return orjson.loads(raw)["clock_ms"] if raw is not None else 0

    def states(self) -> Iterator[CustomerState]:
        """Yield every customer state stored in this partition (used once, after recovery)."""
        for key, value in self._db.items():
            if key != CLOCK_KEY and not key.startswith(_FAUST_KEY_PREFIX) and value is not None:
                yield CustomerState.from_bytes(value)
