"""Fold one partition's records in log order: its clock, its due index and its customers."""
from __future__ import annotations

import heapq
from typing import Iterable, NamedTuple, Optional, Protocol

from projections.customer import DEFAULT_POLICY, evolve_unseen, is_duplicate, pass_time_in_place
from projections.effects import Effect, Outcome, stamped
from projections.policies import PolicyFolding, PolicySchedule, WhatIf, first_change
from projections.state import CustomerState
from projections.documents import Totals
from schemas.events import EventBase
from schemas.policy import Policy


APPLIED, DUPLICATE, REDELIVERED, TICK, POLICY = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.REDELIVERED, Outcome.TICK,
                                                 Outcome.POLICY)  # module globals: read once per event
# Balances stay far inside 64 bits (orjson and Kafka consumers in other languages need that): an event
# that would take one past this limit is refused as a processing error, like any fold that raises.
BALANCE_LIMIT = 10**15


class StateStore(Protocol):
    """The one interface to customer states, used by the worker, replay and the tests.

    Each store saves in its own way (a batch's changelog, a WriteBatch, a copy); the contract, checked for
    every store by tests/unit/test_store_contract.py, is what get returns around a save and a discard.
    """

    def get(self, customer_id: str) -> Optional[CustomerState]:
        """Return the customer's state, which the caller may change in place and then put (None: unknown)."""

    def put(self, customer_id: str, state: CustomerState) -> None:
        """Keep the customer's new state; it is saved with the store's next save."""

    def discard(self, customer_id: str) -> None:
        """Forget the changes not yet saved, so the next get returns the saved state, or None (rollback)."""


class MemoryStore(dict):
    """A state store in a dict (tests, replay, the bench): save() copies every state, so that discard can roll back.

    Until the first save nothing is saved: a discard forgets the customer, which is what a fold of a whole
    log from its start rolls back to.
    """

    def __init__(self) -> None:
        super().__init__()
        self._saved: dict[str, bytes] = {}

    def put(self, customer_id: str, state: CustomerState) -> None:
        self[customer_id] = state

    def discard(self, customer_id: str) -> None:
        raw = self._saved.get(customer_id)
        if raw is None:
            self.pop(customer_id, None)
        else:
            self[customer_id] = CustomerState.from_bytes(raw)

    def save(self) -> None:
        """Save a copy of every state (states are changed in place, so the copy is their bytes)."""
        self._saved = {customer_id: state.to_bytes() for customer_id, state in self.items()}


class SavedStateStore:
    """States saved as bytes (the durable copy) under a write-back cache of unsaved ones: it can roll back."""

    def __init__(self, saved: Optional[dict[str, bytes]] = None) -> None:
        self.saved = saved if saved is not None else {}
        self._cache: dict[str, CustomerState] = {}

    def get(self, customer_id: str) -> Optional[CustomerState]:
        state = self._cache.get(customer_id)
        if state is None and customer_id in self.saved:
            state = self._cache[customer_id] = CustomerState.from_bytes(self.saved[customer_id])
        return state

    def put(self, customer_id: str, state: CustomerState) -> None:
        self._cache[customer_id] = state

    def discard(self, customer_id: str) -> None:
        self._cache.pop(customer_id, None)

    def save(self) -> None:
        """Save every cached state (the end of a batch)."""
        for customer_id, state in self._cache.items():
            self.saved[customer_id] = state.to_bytes()


class DueIndex:
    """Customers by next due time, so a tick visits only the customers that are due.

    A customer's due time moves later with almost every event (a new interaction), so the heap is not
    told of a later time: the entry it holds (`_queued`, never later than the due time) comes up first
    and is then put back at the due time. Only an earlier due time is pushed at once.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        self._queued: dict[str, int] = {}  # customer -> its live heap entry's time (<= its due time, if any)

    def schedule(self, customer_id: str, due_ms: Optional[int]) -> None:
        """Set (or clear) a customer's next due time."""
        if due_ms is None:
            self._due.pop(customer_id, None)  # its heap entry, if any, comes up and is dropped
            return
        self._due[customer_id] = due_ms
        queued = self._queued.get(customer_id)
        if queued is None or due_ms < queued:
            self._queued[customer_id] = due_ms
            heapq.heappush(self._heap, (due_ms, customer_id))
            if len(self._heap) > 2 * len(self._due) + 1024:
                self._compact()

    def any_due(self, clock_ms: int) -> bool:
        """Tell whether a heap entry (maybe one to put back later) is due by clock_ms: most clock moves have none."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= clock_ms

    def pop_due(self, clock_ms: int) -> list[str]:
        """Remove and return the customers due at or before clock_ms, earliest first (by due time, then id)."""
        due = []
        heap, queued, times = self._heap, self._queued, self._due
        while heap and heap[0][0] <= clock_ms:
            entry_ms, customer_id = heapq.heappop(heap)
            if queued.get(customer_id) != entry_ms:
                continue  # an entry an earlier one replaced
            del queued[customer_id]
            due_ms = times.get(customer_id)
            if due_ms is None:
                continue  # no longer due at all
            if due_ms == entry_ms:
                del times[customer_id]
                due.append(customer_id)
            else:  # due later than the entry: put back at its due time (this round, if it is due by clock_ms)
                queued[customer_id] = due_ms
                heapq.heappush(heap, (due_ms, customer_id))
        return due

    def __len__(self) -> int:
        return len(self._due)

    def _compact(self) -> None:
        """Drop stale heap entries: one entry per customer, at its due time."""
        self._heap = [(due_ms, cid) for cid, due_ms in self._due.items()]
        heapq.heapify(self._heap)
        self._queued = dict(self._due)


class PartitionFold(PolicyFolding):
    """Apply a partition's events and ticks in log order; the same code serves live runs and replays."""

    def __init__(self, store: StateStore, policy: Policy = DEFAULT_POLICY, clock_ms: int = 0,
                 schedule: Optional[PolicySchedule] = None, what_if: Optional[WhatIf] = None) -> None:
        """Start with `schedule` (the policies a saved partition had), else with `policy` in force."""
        self.store = store
        self._start_policies(schedule if schedule is not None else PolicySchedule(first_change(policy)), clock_ms,
                             what_if)
        self.clock_ms = clock_ms
        self.due = DueIndex()
        self.totals = Totals()
        self.segments: dict[str, set[str]] = {}  # status, tier or value class -> customer ids
        # Between begin_batch() and the next one: each touched customer's (summary, due time) before it.
        self._undo: Optional[dict[str, Optional[tuple]]] = None
        self._batch_clock_ms = clock_ms
        self._batch_totals = self.totals.to_dict()

    def load(self, states: Iterable[CustomerState]) -> None:
        """Index the due times, totals and segments of states already in the store (after recovery)."""
        for state in states:
            self.due.schedule(state.customer_id, state.next_due_ms)
            self._shift(state.customer_id, state, None, None, None, None)
            self.totals.events_applied += state.events_applied

    def begin_batch(self) -> None:
        """Start a batch: from here on, rollback() can undo what the fold changes (the store keeps the rest)."""
        self._undo = {}
        self._batch_clock_ms = self.clock_ms
        self._batch_totals = self.totals.to_dict()
        self._batch_schedule = self.schedule

    def rollback(self) -> None:
        """Undo the batch so far: clock, due times, totals, segments, and the store's unsaved states."""
        for customer_id, before in self._undo.items():
            for members in self.segments.values():
                members.discard(customer_id)
            if before is not None:
                for name in before[0].segments():
                    self.segments.setdefault(name, set()).add(customer_id)
            self.due.schedule(customer_id, before[1] if before is not None else None)
            self.store.discard(customer_id)
        self.totals = Totals.from_dict(self._batch_totals)
        self.clock_ms = self._batch_clock_ms
        self._set_schedule(self._batch_schedule)
        self._undo = {}

    def _remember(self, customer_id: str, state: Optional[CustomerState]) -> None:
        """Note what a customer was before the batch first changes it (only inside a batch)."""
        undo = self._undo
        if undo is not None and customer_id not in undo:
            undo[customer_id] = None if state is None else (Summary.of(state), state.next_due_ms)

    def segment(self, status: Optional[str], tier: Optional[str], value: Optional[str] = None) -> set[str]:
        """Return the ids of customers with that status, tier and/or value class."""
        chosen = [self.segments.get(name, set()) for name in (status, tier, value) if name is not None]
        return set.intersection(*chosen) if chosen else set()

    def _shift(self, customer_id: str, state: CustomerState, status: Optional[str], tier: str, balance: int,
               value: str) -> None:
        """Move a customer's contribution from what it was (status None: not counted yet) to `state`."""
        # Field by field, without a Summary per event: most events change the balance only.
        totals, segments = self.totals, self.segments
        if status is None:
            totals.add_values(state.status, state.tier, state.points_balance, 0, value=state.value)
            for name in (state.status, state.tier, state.value):
                segments.setdefault(name, set()).add(customer_id)
            return
        totals.points_outstanding += state.points_balance - balance
        if state.status != status:
            _swap(totals.by_status, segments, customer_id, status, state.status)
        if state.tier != tier:
            _swap(totals.by_tier, segments, customer_id, tier, state.tier)
        if state.value != value:
            _swap(totals.by_value, segments, customer_id, value, state.value)

    def apply(self, event: EventBase, offset: Optional[int] = None) -> tuple[Outcome, list[Effect]]:
        """Apply one valid event or tick at its input offset; return its outcome and effects.

        Outcomes: applied, duplicate, tick, policy, and redelivered: the customer's state already holds the record
        at `offset` (it was saved after a batch whose offsets were not committed, or only part of a batch's
        states reached the changelog before a stop). A redelivered record still moves the clock, as it did
        the first time, so that every other customer's time rules fire at the same moments.
        """
        at_ms = event.occurred_at_ms
        customer_id = event.customer_id
        if customer_id is None and event.event_type == "policy.changed":
            return POLICY, self.change_policy(event)  # its occurred_at (when published) moves no clock
        effects = self.advance_clock(at_ms, event.event_id) if at_ms > self.clock_ms else []
        if customer_id is None:
            return TICK, effects
        state = self.store.get(customer_id)
        if state is None:
            status = tier = balance = value = None
        else:
            folded = state.input_offset
            if offset is not None and folded is not None and offset <= folded:
                return REDELIVERED, effects
            if is_duplicate(state, event, self.clock_ms, self.policy):
                if offset is not None:
                    # Stored as read: a duplicate forgotten later (its id's window ends) is still this record.
                    self._remember(customer_id, state)
                    state.input_offset = offset
                    self.store.put(customer_id, state)
                return DUPLICATE, effects
            status, tier, balance, value = state.status, state.tier, state.points_balance, state.value
        if self._undo is not None:
            self._remember(customer_id, state)
        state, more = evolve_unseen(state, event, self.clock_ms, self.policy)
        if offset is not None:
            state.input_offset = offset
        if not -BALANCE_LIMIT < state.points_balance < BALANCE_LIMIT:
            raise OverflowError(f"the points balance would leave ±{BALANCE_LIMIT}")
        totals = self.totals
        totals.events_applied += 1
        if status is not None and state.status == status and state.tier == tier and state.value == value:
            totals.points_outstanding += state.points_balance - balance  # most events: the balance at most
        else:
            self._shift(customer_id, state, status, tier, balance, value)
        self.store.put(customer_id, state)
        self.due.schedule(customer_id, state.next_due_ms)
        if more:
            effects.extend(stamped(more, self.policy_version))
        return APPLIED, effects

    def advance_clock(self, at_ms: int, source_event_id: Optional[str]) -> list[Effect]:
        """Move the partition clock forward and fire what fell due (a late time changes nothing)."""
        if at_ms <= self.clock_ms:
            return []
        # The one check a clock move pays for policy changes: NEVER_MS when none is scheduled.
        effects: list[Effect] = self._enforce_due_changes(at_ms, source_event_id) \
            if at_ms >= self._policy_due_ms else []
        self.clock_ms = at_ms
        due = self.due
        if not due.any_due(at_ms):
            return effects
        version = self.policy_version  # any change due by at_ms is in force: what fell due before it fired above
        for customer_id in due.pop_due(at_ms):
            state = self.store.get(customer_id)
            if state is None:
                continue
            if self._undo is not None:
                self._remember(customer_id, state)
            status, tier, balance, value = state.status, state.tier, state.points_balance, state.value
            more = pass_time_in_place(state, at_ms, self.policy, source_event_id)[1]  # also forgets old event ids
            # Time moved the state on (as_of and due times at least), so it is stored even without effects.
            self._shift(customer_id, state, status, tier, balance, value)
            self.store.put(customer_id, state)
            due.schedule(customer_id, state.next_due_ms)
            if more:
                effects.extend(stamped(more, version))
        return effects


def _swap(counts: dict, segments: dict[str, set[str]], customer_id: str, was: str, now: str) -> None:
    """Move one customer from one status, tier or value class to another: its count and its segment."""
    counts[was] -= 1
    counts[now] += 1
    segments[was].discard(customer_id)
    segments.setdefault(now, set()).add(customer_id)


class Summary(NamedTuple):
    """What a customer contributes to the totals and segments."""
    status: str
    tier: str
    points_balance: int
    value: str

    @classmethod
    def of(cls, state: CustomerState) -> "Summary":
        return cls(state.status, state.tier, state.points_balance, state.value)

    def segments(self) -> tuple[str, str, str]:
        """Return the segments a customer with this summary belongs to (their names never clash)."""
        return self.status, self.tier, self.value
