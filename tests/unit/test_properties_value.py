"""Hypothesis: the incrementally kept R, F, M and value class equal a full recount from the customer's orders."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hypothesis import given

from projections.effects import Outcome
from projections.partition import MemoryStore, PartitionFold
from projections.state import Rfm
from schemas.events import EventBase
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms
from tests.support.events import tick
from tests.unit.test_properties import DETERMINISTIC, histories

POLICY = Policy()
LATER_DAYS = (1, 30, 31, 90, 91, 180, 181, 365, 366, 800)


@dataclass
class Orders:
    """A recount's view of one customer: every order as paid, refunded so far, and the last purchase."""
    paid: dict[str, list[int]] = field(default_factory=dict)  # order_id -> [paid_at_ms, paid, refunded]
    last_purchase_ms: Optional[int] = None


def score(value: int, thresholds: tuple, rising: bool) -> int:
    """Score 5 for the first threshold met, 4 for the second, ... else 1, spelled out (not the project's bisect)."""
    for index, limit in enumerate(thresholds):
        if (value <= limit) if rising else (value >= limit):
            return 5 - index
    return 1


def recount(orders: Orders, clock_ms: int) -> tuple[Optional[list[int]], str]:
    """Return [r, f, m] and the value class at clock_ms from the orders alone (docs/rules.md, customer value)."""
    if orders.last_purchase_ms is None:
        return None, "none"
    window_ms = POLICY.tier.window_days * DAY_MS
    nets = [paid - refunded for paid_at, paid, refunded in orders.paid.values()
            if clock_ms < paid_at + window_ms and paid - refunded > 0]
    rules = POLICY.rfm
    r = score((clock_ms - orders.last_purchase_ms) // DAY_MS, rules.recency_days, rising=True)
    f = score(len(nets), rules.frequency_orders, rising=False)
    m = score(sum(nets), tuple(int(amount * 100) for amount in rules.monetary_min), rising=False)
    value = "high" if r >= 4 and f + m >= 8 else "low" if r <= 2 else "medium"
    return Rfm(r, f, m), value


def note(orders_by: dict[str, Orders], event: EventBase, clock_ms: int) -> None:
    """Record an applied order or refund the way docs/rules.md says (known orders: clock < paid_at + order_days)."""
    if event.event_type not in ("order.paid", "order.refunded"):
        return
    orders = orders_by.setdefault(event.customer_id, Orders())
    order = orders.paid.get(event.payload.order_id)
    known = order is not None and clock_ms < order[0] + POLICY.retention.order_days * DAY_MS
    if event.event_type == "order.paid" and not known:
        orders.paid[event.payload.order_id] = [event.occurred_at_ms, event.payload.amount_minor, 0]
        if orders.last_purchase_ms is None or event.occurred_at_ms > orders.last_purchase_ms:
            orders.last_purchase_ms = event.occurred_at_ms
    elif event.event_type == "order.refunded" and known:
        order[2] = min(order[1], order[2] + event.payload.amount_minor)


def assert_every_customer_recounts(store: MemoryStore, orders_by: dict[str, Orders], clock_ms: int) -> None:
    for customer_id, state in store.items():
        expected = recount(orders_by.get(customer_id, Orders()), clock_ms)
        assert (state.rfm, state.value) == expected, (customer_id, clock_ms)


@DETERMINISTIC
@given(histories())
def test_incremental_rfm_equals_a_full_recount_from_the_orders_at_every_clock(log):
    store = MemoryStore()
    fold = PartitionFold(store, POLICY)
    orders_by: dict[str, Orders] = {}
    for event in log:
        outcome, _ = fold.apply(event)
        if outcome is Outcome.APPLIED:
            note(orders_by, event, fold.clock_ms)
        assert_every_customer_recounts(store, orders_by, fold.clock_ms)
    for days in LATER_DAYS:  # and as time passes with no event: recency falls, orders leave the window
        fold.apply(tick(format_ms(fold.clock_ms + days * DAY_MS)))
        assert_every_customer_recounts(store, orders_by, fold.clock_ms)

