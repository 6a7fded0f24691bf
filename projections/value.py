"""Customer value: the R, F and M scores (1..5) and the value class, from counters the fold keeps (no scan)."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Optional

from projections.state import Rfm
from schemas.policy import Policy
from schemas.timeutil import DAY_MS


def rfm_at(last_purchase_ms: Optional[int], orders: int, spend_minor: int, at_ms: int,
           policy: Policy) -> Optional[Rfm]:
    """Return the scores at at_ms from the last purchase, the orders and the net spend in the tier window."""
    if last_purchase_ms is None:
        return None
    rules = policy.rfm
    return Rfm(5 - bisect_left(rules.recency_days, (at_ms - last_purchase_ms) // DAY_MS),
               1 + bisect_right(rules.frequency_rising, orders), 1 + bisect_right(rules.monetary_rising_minor, spend_minor))


def value_for(rfm: Optional[Rfm], policy: Policy) -> str:
    """Return high, medium, low or none (no purchase) from the scores: high is checked before low."""
    if rfm is None:
        return "none"
    rules = policy.value
    if rfm.r >= rules.high_min_r and rfm.f + rfm.m >= rules.high_min_f_plus_m:
        return "high"
    if rfm.r <= rules.low_max_r:
        return "low"
    return "medium"


def recency_due_ms(last_purchase_ms: Optional[int], at_ms: int, policy: Policy) -> Optional[int]:
    """Return when R next falls after at_ms (None once it is 1, or without a purchase)."""
    if last_purchase_ms is None:
        return None
    limits = policy.rfm.recency_days
    index = bisect_left(limits, (at_ms - last_purchase_ms) // DAY_MS)
    # R holds while the whole days since the purchase are at most limits[index]: it falls on day limit + 1.
    return last_purchase_ms + (limits[index] + 1) * DAY_MS if index < len(limits) else None
