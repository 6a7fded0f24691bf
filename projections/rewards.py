"""Rewards: claims that buy coupons with points, coupon use, and coupon expiry (a time rule)."""
from __future__ import annotations

from typing import Optional

from projections.checkout import ACCEPTED, REJECTED, available_points, ledger_detail, remember_outcome
from projections.days import local_day
from projections.effects import CouponChanged, Effect, RequestRefused
from projections.points import credit, debit
from projections.state import EXPIRED, OPEN, USED, Coupon, CustomerState
from schemas.events import CouponUsed, RewardClaimed
from schemas.outputs import claim_rejected, coupon_expired, coupon_issued, coupon_rejected, coupon_used
from schemas.policy import TIERS, Policy, RewardPolicy
from schemas.timeutil import DAY_MS, format_ms


def coupon_id_of(customer_id: str, claim_id: str) -> str:
    """Return the deterministic id of the coupon a claim issues."""
    return f"{customer_id}:{claim_id}"


def known_coupon(state: CustomerState, coupon_id: str, policy: Policy) -> Optional[Coupon]:
    """Return the coupon if open, or closed recently (clock < closed_at + redemption_id_days)."""
    coupon = state.coupons.get(coupon_id)
    if coupon is None or coupon.closed_at_ms is None:
        return coupon
    if state.as_of_ms >= coupon.closed_at_ms + policy.retention.redemption_id_days * DAY_MS:
        return None
    return coupon


def _claim_year_key(state: CustomerState, reward_id: str, policy: Policy) -> tuple[str, int]:
    """Return the key counting a reward's claims in the current local year (of the clock, like the balance)."""
    year = local_day(state.as_of_ms, state.timezone or policy.campaigns.default_timezone).year
    return reward_id, year


def _refusal(state: CustomerState, reward: Optional[RewardPolicy], year_key: tuple[str, int]) -> Optional[str]:
    """Return why a claim is refused, in this order of checks, or None when it is accepted."""
    if reward is None:
        return "unknown_reward"
    if reward.min_tier is not None and TIERS.index(state.tier) < TIERS.index(reward.min_tier):
        return "tier_too_low"
    cap = reward.per_customer_per_year
    if cap is not None and state.claims_per_year.get(year_key, 0) >= cap:
        return "limit_reached"
    if reward.points > available_points(state):
        return "insufficient_points"
    return None


def claim_reward(state: CustomerState, event: RewardClaimed, policy: Policy) -> list[Effect]:
    """Take a reward's points and issue its coupon, or reject the claim; a repeated claim_id changes nothing."""
    payload = event.payload
    coupon_id = coupon_id_of(state.customer_id, payload.claim_id)
    seen_ms = state.claim_ids.get(payload.claim_id)
    if (seen_ms is not None and state.as_of_ms < seen_ms + policy.retention.redemption_id_days * DAY_MS) \
            or known_coupon(state, coupon_id, policy) is not None:
        return []
    state.claim_ids[payload.claim_id] = event.occurred_at_ms
    reward = policy.rewards.get(payload.reward_id)
    year_key = _claim_year_key(state, payload.reward_id, policy)
    reason = _refusal(state, reward, year_key)
    key, request = f"claim:{payload.claim_id}", [payload.reward_id]
    if reason is not None:
        remember_outcome(state, key, event.occurred_at_ms, request, REJECTED, {"reason": reason})
        return [RequestRefused(claim_rejected(
            customer_id=state.customer_id, reason=reason, claim_id=payload.claim_id, reward_id=payload.reward_id,
            at=format_ms(event.occurred_at_ms), source_event_id=event.event_id), "claim_rejected", reason)]
    state.claims_per_year[year_key] = state.claims_per_year.get(year_key, 0) + 1
    entry = debit(state, reward.points, event.occurred_at_ms, "redeem", event.event_id,
                  reward_id=payload.reward_id, claim_id=payload.claim_id)
    expires_ms = event.occurred_at_ms + reward.valid_days * DAY_MS
    state.coupons[coupon_id] = Coupon(
        reward_id=payload.reward_id, claim_id=payload.claim_id, points=reward.points,
        issued_at_ms=event.occurred_at_ms, expires_at_ms=expires_ms, coupon_value_minor=reward.coupon_value_minor,
        percent_off=reward.percent_off, min_order_minor=reward.min_order_minor, refund=reward.refund_points_on_expiry)
    if state.coupon_due_ms is None or expires_ms < state.coupon_due_ms:
        state.coupon_due_ms = expires_ms
    remember_outcome(state, key, event.occurred_at_ms, request, ACCEPTED,
                     {**ledger_detail(entry), "coupon_id": coupon_id, "expires_at": format_ms(expires_ms)})
    return [entry, CouponChanged(coupon_issued(
        customer_id=state.customer_id, coupon_id=coupon_id, reward_id=payload.reward_id, claim_id=payload.claim_id,
        points=reward.points, coupon_value=_money(reward.coupon_value_minor), percent_off=reward.percent_off,
        min_order=_money(reward.min_order_minor), expires_at=format_ms(expires_ms),
        at=format_ms(event.occurred_at_ms), source_event_id=event.event_id), "coupon_issued")]


def _order_amount(state: CustomerState, event: CouponUsed, policy: Policy) -> Optional[int]:
    """Return the amount of the order a coupon is used on: the payload's, else the paid order's (None if unknown)."""
    if event.payload.amount_minor is not None:
        return event.payload.amount_minor
    order = state.orders.get(event.payload.order_id)
    if order is None or state.as_of_ms >= order.paid_at_ms + policy.retention.order_days * DAY_MS:
        return None
    return order.paid_minor


def _use_refusal(state: CustomerState, coupon: Optional[Coupon], event: CouponUsed, policy: Policy) -> Optional[str]:
    """Return why a coupon cannot be used on this order, or None."""
    if coupon is None:
        return "unknown_coupon"
    if coupon.state == USED:
        return "already_used"
    if coupon.state == EXPIRED:
        return "expired"
    if coupon.min_order_minor is not None:
        amount = _order_amount(state, event, policy)
        if amount is None:
            return "unknown_order"
        if amount < coupon.min_order_minor:
            return "below_min_order"
    return None


def use_coupon(state: CustomerState, event: CouponUsed, policy: Policy) -> list[Effect]:
    """Mark an open coupon used, once; else reject the use. The same use again (same order) changes nothing."""
    payload = event.payload
    coupon = known_coupon(state, payload.coupon_id, policy)
    if coupon is not None and coupon.state == USED and coupon.order_id == payload.order_id:
        return []
    reason = _use_refusal(state, coupon, event, policy)
    if reason is not None:
        return [RequestRefused(coupon_rejected(
            customer_id=state.customer_id, reason=reason, coupon_id=payload.coupon_id, order_id=payload.order_id,
            at=format_ms(event.occurred_at_ms), source_event_id=event.event_id), "coupon_rejected", reason)]
    coupon.state, coupon.closed_at_ms, coupon.order_id = USED, event.occurred_at_ms, payload.order_id
    if coupon.expires_at_ms == state.coupon_due_ms:
        _refresh_coupon_due(state)
    return [CouponChanged(coupon_used(
        customer_id=state.customer_id, coupon_id=payload.coupon_id, reward_id=coupon.reward_id,
        order_id=payload.order_id, at=format_ms(event.occurred_at_ms), source_event_id=event.event_id), "coupon_used")]


def expire_coupons(state: CustomerState, until_ms: int, policy: Policy, source_event_id: Optional[str]) -> list[Effect]:
    """Expire every open coupon whose expiry is at or before until_ms; return its points if its reward says so."""
    if state.coupon_due_ms is None or state.coupon_due_ms > until_ms:
        return []
    effects = []
    for coupon_id, coupon in state.coupons.items():
        if coupon.state != OPEN or coupon.expires_at_ms > until_ms:
            continue
        expires_ms = coupon.expires_at_ms
        coupon.state, coupon.closed_at_ms = EXPIRED, expires_ms
        refund = coupon.points if coupon.refund else 0
        effects.append(CouponChanged(coupon_expired(
            customer_id=state.customer_id, coupon_id=coupon_id, reward_id=coupon.reward_id, points_refunded=refund,
            at=format_ms(expires_ms), source_event_id=source_event_id), "coupon_expired"))
        if refund:
            effects.append(credit(state, refund, expires_ms, policy.lots.expiry_days, "coupon_refund", source_event_id,
                                  reward_id=coupon.reward_id, claim_id=coupon.claim_id))
    _refresh_coupon_due(state)
    return effects


def _refresh_coupon_due(state: CustomerState) -> None:
    """Recompute the earliest expiry of an open coupon (a customer holds few)."""
    state.coupon_due_ms = min((c.expires_at_ms for c in state.coupons.values() if c.state == OPEN), default=None)


def prune_rewards(state: CustomerState, policy: Policy) -> None:
    """Forget claim ids, closed coupons and yearly counts past their retention (no outcome depends on them)."""
    since_ms = state.as_of_ms - policy.retention.redemption_id_days * DAY_MS
    if state.claim_ids and min(state.claim_ids.values()) < since_ms:
        state.claim_ids = {k: t for k, t in state.claim_ids.items() if t >= since_ms}
    if any(c.closed_at_ms is not None and c.closed_at_ms < since_ms for c in state.coupons.values()):
        state.coupons = {k: c for k, c in state.coupons.items() if c.closed_at_ms is None or c.closed_at_ms >= since_ms}
    if state.claims_per_year:
        # Only the current local year's counts decide; the year before is kept for a change of time zone.
        first_year = local_day(state.as_of_ms, state.timezone or policy.campaigns.default_timezone).year - 1
        state.claims_per_year = {k: n for k, n in state.claims_per_year.items()
                                 if k[1] >= first_year}


def open_coupons(state: CustomerState) -> list[dict]:
    """List the open coupons, soonest expiry first, as the customer JSON shows them."""
    coupons = sorted((c.expires_at_ms, coupon_id, c) for coupon_id, c in state.coupons.items() if c.state == OPEN)
    return [{"coupon_id": coupon_id, "reward_id": c.reward_id, "expires_at": format_ms(expires_ms),
             "coupon_value": _money(c.coupon_value_minor), "percent_off": c.percent_off,
             "min_order": _money(c.min_order_minor)} for expires_ms, coupon_id, c in coupons]


def _money(minor: Optional[int]) -> Optional[str]:
    """Format minor units as a decimal string with 2 places (None stays None)."""
    return None if minor is None else f"{minor // 100}.{minor % 100:02d}"
