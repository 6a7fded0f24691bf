"""The cost of one tick on a partition that holds many customers of which few are due (pure projections code)."""
from __future__ import annotations

import time

from projections.partition import MemoryStore, PartitionFold
from projections.state import CustomerState
from schemas.policy import Policy
from schemas.timeutil import format_ms, parse_rfc3339_ms
from schemas.validate import Rejection, validate_document
from tools.produce import tick_event

_START_MS = parse_rfc3339_ms("2025-01-01T00:00:00Z")


def valid_event(doc: dict):
    """Validate a document the benchmark built (an invalid one is the benchmark's bug)."""
    event = validate_document(doc)
    if isinstance(event, Rejection):
        raise ValueError(f"the benchmark built an invalid event: {event}")
    return event


def _registered(customer_id: str, at_ms: int, policy: Policy) -> CustomerState:
    """One customer's state after registering at at_ms (no birthday: one due time, when they turn dormant)."""
    fold = PartitionFold(MemoryStore(), policy)
    fold.apply(valid_event({"event_id": f"{customer_id}-r", "event_type": "customer.registered",
                            "customer_id": customer_id, "occurred_at": format_ms(at_ms), "payload": {}}))
    return fold.store[customer_id]


def tick_seconds(held: int, due: int, policy: Policy) -> float:
    """Seconds one clock.tick takes on a partition holding `held` customers of which `due` are due.

    The partition is built as a recovered one: states cloned from two registrations (early and later
    ones), then indexed by PartitionFold.load, so building a million costs seconds, not minutes.
    """
    early = _registered("early", _START_MS, policy)
    tick_ms = early.next_due_ms
    if tick_ms is None:
        raise ValueError("the policy gives a registered customer no due time to benchmark a tick with")
    # The others registered later, before the tick (the partition clock never goes back), and are due after it.
    later = _registered("later", _START_MS + (tick_ms - _START_MS) * 2 // 3, policy)
    if later.next_due_ms is None or later.next_due_ms <= tick_ms:
        raise ValueError("the policy makes every registered customer due at the benchmark's tick")
    store = MemoryStore()
    shared = later.to_dict()  # the customers not due share their (empty) containers: a tick never touches them
    for number in range(held):
        customer_id = f"cust-{number:07d}"
        if number < due:
            state = early.clone()
            state.customer_id = customer_id
        else:
            shared["customer_id"] = customer_id
            state = CustomerState.from_dict(shared)
        store[customer_id] = state
    fold = PartitionFold(store, policy, clock_ms=later.as_of_ms)
    fold.load(store.values())
    tick = valid_event(tick_event(format_ms(tick_ms)))
    started = time.perf_counter()
    fold.apply(tick)
    seconds = time.perf_counter() - started
    moved = sum(1 for state in store.values() if state.as_of_ms != later.as_of_ms)
    if moved != min(due, held):
        raise ValueError(f"the tick moved {moved} customers, not the {due} built to be due")
    return seconds
