"""A realistic, seeded synthetic history of customer events, with daily clock ticks."""
from __future__ import annotations

import random
import time
from typing import Iterator, Optional

from schemas.timeutil import DAY_MS, format_ms, parse_rfc3339_ms
from tools.cli_common import UserError, parse_time

START_MS = parse_rfc3339_ms("2025-01-01T00:00:00Z")
SPAN_DAYS = 420  # so the default history ends on 2026-02-25, fixed so that runs and tests compare
_FUTURE_SLACK_MS = 60_000  # --end may be this far ahead of this machine's clock (clock skew), no further
# Relative weights of activity types after registration (orders drive tiers, visits drive status).
_MIX = [
    ("customer.visited", 34), ("customer.checked_in", 20), ("order.paid", 16), ("content.shared", 10),
    ("review.posted", 5), ("redemption.requested", 5), ("order.refunded", 3),
    ("customer.profile_updated", 3), ("points.adjusted", 1), ("customer.erased", 0.2),
]
_TIMEZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Shanghai", "Asia/Tokyo", "Europe/Berlin", "America/New_York"]


def _amount(rng: random.Random, whale: bool) -> str:
    """Draw an order amount in currency units with 2 decimals."""
    median = 900.0 if whale else 160.0
    return f"{min(rng.lognormvariate(0, 0.8) * median, 50_000):.2f}"


def _customer_events(rng: random.Random, customer_id: str, count: int, start_ms: int) -> list[tuple[int, str, dict]]:
    """Draw one customer's registration and activity, as (time_ms, type, payload) in time order."""
    registered_ms = start_ms + rng.randrange(60 * DAY_MS)
    # Some customers stop early (they become dormant), the rest stay active to the end.
    active_days = rng.choice([30, 90, 200, SPAN_DAYS, SPAN_DAYS, SPAN_DAYS])
    end_ms = min(registered_ms + active_days * DAY_MS, start_ms + SPAN_DAYS * DAY_MS)
    whale = rng.random() < 0.05
    birthday = f"{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}" if rng.random() < 0.7 else None
    profile = {"birthday": birthday, "timezone": rng.choice(_TIMEZONES)} if birthday else {}
    events = [(registered_ms, "customer.registered", profile)]
    times = sorted(rng.randrange(registered_ms + 1, end_ms) for _ in range(max(count - 1, 0)))
    kinds = rng.choices([k for k, _ in _MIX], [w for _, w in _MIX], k=len(times))
    orders: list[tuple[str, float]] = []
    for n, (at_ms, kind) in enumerate(zip(times, kinds)):
        payload: dict = {}
        if kind == "order.paid" or (kind in ("review.posted", "order.refunded") and not orders):
            kind = "order.paid"
            order_id = f"{customer_id}-o{n}"
            amount = _amount(rng, whale)
            orders.append((order_id, float(amount)))
            payload = {"order_id": order_id, "amount": amount, "currency": "CNY"}
        elif kind == "review.posted":
            payload = {"order_id": rng.choice(orders)[0], "rating": rng.randrange(1, 6)}
        elif kind == "order.refunded":
            order_id, paid = rng.choice(orders)
            share = rng.choice([1.0, 0.5, 0.25])
            payload = {"order_id": order_id, "amount": f"{max(paid * share, 0.01):.2f}"}
        elif kind == "redemption.requested":
            payload = {"redemption_id": f"{customer_id}-r{n}", "points": rng.choice([50, 100, 200, 500, 1000])}
        elif kind in ("customer.visited", "content.shared"):
            payload = {"channel": rng.choice(["app", "web", "wechat"])}
        elif kind == "customer.profile_updated":
            payload = {"timezone": rng.choice(_TIMEZONES)}
        elif kind == "points.adjusted":
            payload = {"points": rng.choice([100, 50, -20]), "reason": "customer service"}
        events.append((at_ms, kind, payload))
    return events


def synthetic_history(events: int, customers: int, seed: int, ticks: bool = True,
                      end_ms: Optional[int] = None) -> Iterator[dict]:
    """Yield about `events` customer events for `customers` customers, plus daily ticks, in time order.

    The history spans SPAN_DAYS days and ends at end_ms (default: 2026-02-25). Moving the end moves every
    time by the same amount and nothing else, so a worker on the wall clock can be fed a history that ends now.
    """
    start_ms = START_MS if end_ms is None else end_ms - SPAN_DAYS * DAY_MS
    rng = random.Random(seed)
    customers = max(1, min(customers, events))
    weights = [rng.paretovariate(1.5) for _ in range(customers)]
    total = sum(weights)
    rows: list[tuple[int, str, str, dict]] = []
    for index, weight in enumerate(weights):
        customer_id = f"cust-{seed}-{index:06d}"
        count = max(1, round(events * weight / total))
        rows.extend((at_ms, customer_id, kind, payload)
                    for at_ms, kind, payload in _customer_events(rng, customer_id, count, start_ms))
    if ticks:
        rows.extend((start_ms + day * DAY_MS, "", "clock.tick", {}) for day in range(1, SPAN_DAYS + 1))
    rows.sort(key=lambda row: row[0])
    for n, (at_ms, customer_id, kind, payload) in enumerate(rows):
        if kind != "clock.tick" and rng.random() < 0.01:
            at_ms -= rng.randrange(1, 2 * DAY_MS)  # a late event: sent after later ones
        yield {"event_id": f"s{seed}-{n}", "event_type": kind, "customer_id": customer_id or None,
               "occurred_at": format_ms(at_ms), "schema_version": 1, "payload": payload}


def parse_end(value: Optional[str], now_ms: Optional[int] = None) -> Optional[int]:
    """Parse `produce --synthetic --end`: 'now' or an RFC 3339 time, not in the future; None keeps the default."""
    if value is None:
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    end_ms = now_ms if value.strip().lower() == "now" else parse_time(value, "--end")
    if end_ms > now_ms + _FUTURE_SLACK_MS:
        # The worker refuses events from the future (DLQ occurred_at_in_future), so such a history is no use.
        raise UserError(f"--end: {value!r} is in the future; give 'now' or an earlier time")
    return end_ms
