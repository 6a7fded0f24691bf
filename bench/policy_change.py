"""The cost of a policy change on a partition that holds many customers (pure projections code, in process)."""
from __future__ import annotations

import time
from typing import NamedTuple


from bench.tick import valid_event
from projections.partition import PartitionFold, SavedStateStore
from projections.state import CustomerState
from schemas.policy import Policy
from schemas.policy_doc import policy_changed_document, policy_document
from schemas.timeutil import DAY_MS, format_ms
from tools.produce import tick_event
from tools.synthetic import synthetic_history

_TEMPLATES = 2_000  # distinct customers folded from a synthetic history, then copied under new ids


class PolicyChangeCost(NamedTuple):
    """Seconds a change took on one partition: re-evaluating its customers, then encoding every state to write."""
    customers: int
    fold_s: float
    encode_s: float
    state_bytes: int


def _templates(policy: Policy) -> tuple[list[dict], int]:
    """Fold a synthetic history of one partition; return its customers' stored forms and its clock."""
    fold = PartitionFold(SavedStateStore(), policy)
    for doc in synthetic_history(4 * _TEMPLATES, _TEMPLATES, seed=5):
        fold.apply(valid_event(doc))
    fold.store.save()
    return [CustomerState.from_bytes(raw).to_dict() for raw in fold.store.saved.values()], fold.clock_ms


def lowered_vip(policy: Policy) -> Policy:
    """Return the policy with the VIP threshold at the premium one: many customers change tier."""
    document = policy_document(policy)
    document["tier"]["vip_min"] = document["tier"]["premium_min"]
    return Policy.model_validate(document)


def policy_change_cost(customers: int, policy: Policy) -> PolicyChangeCost:
    """Time one change taking effect on a partition holding `customers` customers, none of them in the cache.

    The states are bytes in the store, as a worker's RocksDB holds them, so the fold decodes each one it
    re-evaluates (a worker's cache holds the 20,000 used last); the worker then writes every state again.
    """
    templates, clock_ms = _templates(policy)
    saved: dict[str, bytes] = {}
    for number in range(customers):
        customer_id = f"cust-{number:07d}"
        template = templates[number % len(templates)]
        saved[customer_id] = CustomerState.from_dict({**template, "customer_id": customer_id}).to_bytes()
    store = SavedStateStore(saved)
    fold = PartitionFold(store, policy, clock_ms=clock_ms)
    fold.load(CustomerState.from_bytes(raw) for raw in saved.values())
    effective = format_ms(clock_ms + DAY_MS)
    fold.apply(valid_event(policy_changed_document(lowered_vip(policy), effective, format_ms(clock_ms), "bench-p1")))
    tick = valid_event(tick_event(effective))
    started = time.perf_counter()
    fold.apply(tick)
    fold_s = time.perf_counter() - started
    started = time.perf_counter()
    store.save()  # every state encoded again, as the batch's end writes them (changelog and RocksDB)
    encode_s = time.perf_counter() - started
    moved = sum(1 for customer_id in saved if store.get(customer_id).as_of_ms == clock_ms + DAY_MS)
    if moved != customers or fold.schedule.scheduled:
        raise ValueError(f"the change re-evaluated {moved} customers, not the {customers} built")
    return PolicyChangeCost(customers, fold_s, encode_s, sum(map(len, saved.values())))
