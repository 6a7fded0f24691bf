"""The customer table's partitions as state stores: RocksDB reads, batched writes and changelog records."""
from __future__ import annotations

from typing import Any, Iterator, Optional

import orjson
from rocksdict import WriteBatch

from projections.state import CustomerState
from streams.faust_app import key_index, partition_db
from projections.policies import PolicySchedule
from streams.settings import CLOCK_KEY, PARTITION_KEYS, POLICY_KEY

# Faust keeps its own bookkeeping (the persisted changelog offset) under `__faust\0offset__`. Customer ids
# cannot hold a NUL (validation refuses control characters), so only keys with the NUL are Faust's.
_FAUST_KEY_PREFIX = b"__faust\x00"


class TablePartitionStore:
    """One partition of the Faust customer table, with a write-back cache flushed once per batch.

    Faust's own `table[key] = value` writes to the partition of the *current event* and sends one
    changelog record per write; a batch spans partitions and writes a customer many times, so we
    write the partition's RocksDB directly and return one changelog record per customer per batch,
    for the customer's own changelog partition (Faust's recovery and standby replicas read them
    as if Faust had written them).
    """

    def __init__(self, table: Any, partition: int, cached_states: int = 20_000, clock: str = "event") -> None:
        self.table = table
        self.partition = partition
        self.clock = clock  # the worker's --clock, written with the partition clock (streams/worker.py reads it)
        # States stay cached across batches: this worker is the partition's only writer while it owns it
        # (the store is dropped on revocation), and reading a busy customer's JSON again costs more than
        # anything else in a batch. The cache is emptied after a flush once it holds too many.
        self._cache: dict[str, CustomerState] = {}
        self._cached_states = cached_states
        # The customers changed since the last changelog, in the order first changed (a dict: a set's order
        # would follow string hashes, which differ per process, and the changelog would differ between runs).
        self._dirty: dict[str, None] = {}
        self.saved_schedule: Optional[PolicySchedule] = None  # the partition's policies as last written

    @property
    def _db(self) -> Any:
        return partition_db(self.table, self.partition)

    def get(self, customer_id: str) -> Optional[CustomerState]:
        """Return a customer's state from the batch cache or RocksDB."""
        state = self._cache.get(customer_id)
        if state is None:
            raw = self._db.get(customer_id.encode())
            if raw is None:
                return None
            state = self._cache[customer_id] = CustomerState.from_bytes(raw)
        return state

    def peek(self, customer_id: str) -> Optional[CustomerState]:
        """Return a customer's state like get(), without keeping it in the cache (exports read every member)."""
        state = self._cache.get(customer_id)
        if state is None:
            raw = self._db.get(customer_id.encode())
            state = None if raw is None else CustomerState.from_bytes(raw)
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        """Keep a new state until the batch is flushed."""
        self._cache[customer_id] = state
        self._dirty[customer_id] = None

    def discard(self, customer_id: str) -> None:
        """Forget a customer's unsaved state: the next get reads the saved one from RocksDB (rollback)."""
        self._cache.pop(customer_id, None)
        self._dirty.pop(customer_id, None)

    def changelog(self, clock_ms: int, next_offset: Optional[int] = None,
                  schedule: Optional[PolicySchedule] = None) -> list[tuple[bytes, bytes]]:
        """Return the batch's changed states, then the partition clock and the next input offset to fold.

        The clock record comes last, so a store that has it has every state of the batch (a partition's
        records keep their order); its `next_offset` makes a redelivered record a one-integer check.

        Nothing is written locally yet: RocksDB keeps the state before the batch until the broker has
        the batch's outputs and changelog (see save()), so a crash in between re-applies the batch.
        """
        changelog = [(customer_id.encode(), self._cache[customer_id].to_bytes()) for customer_id in self._dirty]
        clock = {"clock_ms": clock_ms, "next_offset": next_offset, "clock": self.clock}
        if schedule is not None:
            clock["policy"] = schedule.in_force.version  # what a starting worker and `replay --verify` compare
            if schedule is not self.saved_schedule:  # schedules are never changed in place: a new one changed
                changelog.append((POLICY_KEY, schedule.to_bytes()))
                self.saved_schedule = schedule
        changelog.append((CLOCK_KEY, orjson.dumps(clock)))
        self._dirty.clear()
        return changelog

    def save(self, changelog: list[tuple[bytes, bytes]]) -> None:
        """Write changelog records (already acknowledged by the broker) into the local RocksDB, all at once.

        One WriteBatch: one write to RocksDB's log instead of one per record, and a
        crash leaves none or all of the batch's states, never a part without its clock record.
        """
        batch = WriteBatch(raw_mode=True)  # as Faust opens the table's databases (raw bytes keys and values)
        for key, value in changelog:
            batch.put(key, value)
        self._db.write(batch)
        partition = self.partition
        key_index(self.table).update((key, partition) for key, _ in changelog)  # one lock, not one per key
        if len(self._cache) > self._cached_states:
            self._cache.clear()

    def clock_ms(self) -> int:
        """Return the partition clock stored with the states (0 if none)."""
        raw = self._db.get(CLOCK_KEY)
        return orjson.loads(raw)["clock_ms"] if raw is not None else 0

    def next_offset(self) -> Optional[int]:
        """Return the input offset after the last record folded into these states (None if unknown)."""
        raw = self._db.get(CLOCK_KEY)
        return orjson.loads(raw).get("next_offset") if raw is not None else None

    def policy_schedule(self) -> Optional[PolicySchedule]:
        """Return the partition's policies as last written (None: never written)."""
        raw = self._db.get(POLICY_KEY)
        return PolicySchedule.from_bytes(raw) if raw is not None else None

    def states(self) -> Iterator[CustomerState]:
        """Yield every customer state stored in this partition (used once, after recovery)."""
        for key, value in self._db.items():
            if key not in PARTITION_KEYS and not key.startswith(_FAUST_KEY_PREFIX) and value is not None:
                yield CustomerState.from_bytes(value)
