"""A policy's figures that the fold reads on every event, as plain attributes in the units the rules use.

A pydantic attribute costs several times a slot's, and next_due_ms alone reads eight per event.
"""
from __future__ import annotations

from typing import Optional

from schemas.policy import Policy
from schemas.timeutil import DAY_MS


class PolicyFigures:
    """What the hot rules read of a policy (ms for days, minor units for money)."""

    __slots__ = ("policy", "dormant_ms", "active_ms", "purchase_ms", "window_ms", "vip_min_minor",
                 "premium_min_minor", "reminders_on", "member_days_on", "default_timezone", "counted_days_ms",
                 "order_days_ms", "earn_ratio", "expiry_days", "recency_days",
                 "frequency_rising", "monetary_rising_minor")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        status = policy.status
        self.dormant_ms = status.dormant_after_days * DAY_MS
        self.active_ms = status.active_interaction_days * DAY_MS
        self.purchase_ms = status.purchase_window_days * DAY_MS
        self.window_ms = policy.tier.window_days * DAY_MS
        self.vip_min_minor = policy.tier.vip_min_minor
        self.premium_min_minor = policy.tier.premium_min_minor
        self.reminders_on = policy.campaigns.reminders_on
        self.member_days_on = policy.campaigns.member_days_on
        self.default_timezone = policy.campaigns.default_timezone
        self.counted_days_ms = policy.retention.daily_counter_days * DAY_MS
        self.order_days_ms = policy.retention.order_days * DAY_MS
        # tier -> (numerator, denominator) of its earn multiplier: exact, as the rule's integer arithmetic needs
        self.earn_ratio = {tier: m.as_integer_ratio() for tier, m in policy.earn.multiplier.items()}
        self.expiry_days = policy.lots.expiry_days
        self.recency_days = policy.rfm.recency_days
        self.frequency_rising = policy.rfm.frequency_rising
        self.monetary_rising_minor = policy.rfm.monetary_rising_minor


_last: Optional[PolicyFigures] = None  # a process folds with one policy: the last one asked for is kept


def figures(policy: Policy) -> PolicyFigures:
    """Return the figures of a policy (policies are frozen, so they never go stale)."""
    global _last
    last = _last
    if last is not None and last.policy is policy:
        return last
    last = _last = PolicyFigures(policy)
    return last
