"""The state of one very active customer: ten events a day, an order among them, for two years (in process)."""
from __future__ import annotations

from typing import NamedTuple

import msgspec

from bench.tick import valid_event
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms, parse_rfc3339_ms

_START_MS = parse_rfc3339_ms("2025-01-01T09:00:00Z")
_CUSTOMER = "heavy-customer"
# One day of the customer: a check-in, six visits, a share, an order and its review.
_DAY = [("customer.checked_in", {}), *[("customer.visited", {"channel": "app"})] * 6,
        ("content.shared", {"channel": "wechat"}), ("order.paid", {"amount": "88.00"}), ("review.posted", {"rating": 5})]


class HeavyState(NamedTuple):
    """Bytes of the customer's stored state after one year and at the end (two years by default), and its largest field then."""
    one_year: int
    at_end: int
    largest_field: str
    largest_field_bytes: int
    fields: dict[str, int]  # bytes of each field's msgpack at the end (before a large state is compressed)


def heavy_state(policy: Policy, days: int = 730) -> HeavyState:
    """Fold the customer's history day by day; measure its state (the store's bytes) at day 365 and at the end."""
    fold = PartitionFold(MemoryStore(), policy)
    fold.apply(valid_event({"event_id": "heavy-registered", "event_type": "customer.registered",
                            "customer_id": _CUSTOMER, "occurred_at": format_ms(_START_MS), "payload": {}}))
    one_year = 0
    for day in range(days):
        for n, (event_type, payload) in enumerate(_DAY):
            order = {"order_id": f"order-{day:06d}"} if event_type in ("order.paid", "review.posted") else {}
            fold.apply(valid_event({"event_id": f"heavy-{day:06d}-{n:02d}", "event_type": event_type,
                                    "customer_id": _CUSTOMER, "payload": {**payload, **order},
                                    "occurred_at": format_ms(_START_MS + day * DAY_MS + n * 60_000)}))
        if day == 364:
            one_year = len(fold.store[_CUSTOMER].to_bytes())
    state = fold.store[_CUSTOMER]
    fields = {name: len(msgspec.msgpack.encode(value)) for name, value in state.to_dict().items()}
    largest = max(fields, key=fields.get)
    return HeavyState(one_year, len(state.to_bytes()), largest, fields[largest], fields)
