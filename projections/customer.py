"""The customer decider: evolve(state, event, clock) -> (state, effects), pure and deterministic.

The handlers below change the state they are given: `evolve` hands them a clone, so it never
changes its input; the partition fold, which owns its states, uses `evolve_in_place` and saves the copy.
"""
from __future__ import annotations

from typing import Callable, Optional

from projections.care import forget_member_day, forget_reminder_time
from projections.points import credit, debit
from projections.rewards import claim_reward, prune_rewards, use_coupon
from projections.state import (
    EARNED_POINTS, PAID_AT_MS, PAID_MINOR, REFUNDED_MINOR, REVERSED_POINTS, REVIEWED, CustomerState, Effect,
)
from projections.timeline import advance, count_order_spend, next_due_ms, reevaluate, refresh_birthday_due
from schemas.events import INTERACTION_TYPES, EventBase
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms, local_date

DEFAULT_POLICY = Policy()
_PRUNE_EVERY_EVENTS = 32  # prune old ids, orders and counters every this many events (amortised)


def initial_state(customer_id: str, first_seen_ms: int) -> CustomerState:
    """Return the state of a customer the engine has not seen before."""
    return CustomerState(customer_id, first_seen_ms)


def is_duplicate(state: Optional[CustomerState], event: EventBase, clock_ms: int,
                 policy: Policy = DEFAULT_POLICY) -> bool:
    """Tell whether this event_id was applied to the customer and is still remembered at clock_ms.

    Retention is a rule, not a side effect of pruning: an id is a duplicate while
    clock < its occurred_at + event_id_days, whether or not pruning has run.
    """
    if state is None:
        return False
    seen_ms = state.seen_event_ids.get(event.event_id)
    return seen_ms is not None and max(clock_ms, event.occurred_at_ms) < seen_ms + policy.retention.event_id_days * DAY_MS


def known_order(state: CustomerState, order_id: str, policy: Policy) -> Optional[list[int]]:
    """Return the order if it is still known (clock < paid_at + order_days), else None."""
    order = state.orders.get(order_id)
    if order is None or state.as_of_ms >= order[PAID_AT_MS] + policy.retention.order_days * DAY_MS:
        return None
    return order


def _remembered_id(ids: dict[str, int], key: str, state: CustomerState, policy: Policy) -> bool:
    """Tell whether a redemption id is still remembered (clock < its time + event_id_days)."""
    seen_ms = ids.get(key)
    return seen_ms is not None and state.as_of_ms < seen_ms + policy.retention.event_id_days * DAY_MS


def evolve(state: Optional[CustomerState], event: EventBase, clock_ms: int,
           policy: Policy = DEFAULT_POLICY) -> tuple[CustomerState, list[Effect]]:
    """Apply one customer event at partition clock clock_ms; a duplicate returns the same state and no effects."""
    if is_duplicate(state, event, clock_ms, policy):
        return state, []
    return evolve_in_place(state.clone() if state is not None else None, event, clock_ms, policy)


def evolve_in_place(state: Optional[CustomerState], event: EventBase, clock_ms: int,
                    policy: Policy = DEFAULT_POLICY) -> tuple[CustomerState, list[Effect]]:
    """Like evolve, but change `state` itself: for a caller that owns it and drops the old value (the fold)."""
    if is_duplicate(state, event, clock_ms, policy):
        return state, []
    clock_ms = max(clock_ms, event.occurred_at_ms)
    if state is None:
        state = initial_state(event.customer_id, event.occurred_at_ms)
        state.as_of_ms = clock_ms  # nothing happened to a new customer before its first event: no time to walk
        effects = []
    else:
        effects = advance(state, clock_ms, policy, event.event_id)
    state.seen_event_ids[event.event_id] = event.occurred_at_ms
    state.events_applied += 1
    if event.event_type in INTERACTION_TYPES and (state.last_interaction_ms is None
                                                   or event.occurred_at_ms > state.last_interaction_ms):
        state.last_interaction_ms = event.occurred_at_ms
    effects.extend(_APPLY[event.event_type](state, event, policy))
    if state.events_applied % _PRUNE_EVERY_EVENTS == 0:
        _prune(state, policy)
    effects.extend(reevaluate(state, state.as_of_ms, policy, event.event_id))
    due_ms = state.next_due_ms = next_due_ms(state, policy)
    if due_ms is not None and due_ms <= clock_ms:  # e.g. a late lot already expired (skipped when not: hot path)
        effects.extend(advance(state, clock_ms, policy, event.event_id))
    return state, effects


def advance_to(state: CustomerState, clock_ms: int, policy: Policy = DEFAULT_POLICY,
               source_event_id: Optional[str] = None) -> tuple[CustomerState, list[Effect]]:
    """Move a customer to a later partition clock, firing what fell due; unchanged if nothing is due."""
    if state.next_due_ms is None or state.next_due_ms > clock_ms:
        return state, []
    return advance_in_place(state.clone(), clock_ms, policy, source_event_id)


def advance_in_place(state: CustomerState, clock_ms: int, policy: Policy = DEFAULT_POLICY,
                     source_event_id: Optional[str] = None) -> tuple[CustomerState, list[Effect]]:
    """Like advance_to, but change `state` itself (for the fold, which owns it)."""
    if state.next_due_ms is None or state.next_due_ms > clock_ms:
        return state, []
    return state, advance(state, clock_ms, policy, source_event_id)


def _profile(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Set the fields the event carries (an explicit null clears one)."""
    payload = event.payload
    if "birthday" in payload.model_fields_set:
        state.birthday = payload.birthday
    if "timezone" in payload.model_fields_set and payload.timezone != state.timezone:
        state.timezone = payload.timezone
        forget_reminder_time(state)  # local dates moved
        forget_member_day(state)
    refresh_birthday_due(state, policy)
    return []


def _erase(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Forget personal data; points, tier and ledger stay."""
    state.birthday = None
    if state.timezone is not None:
        state.timezone = None
        forget_reminder_time(state)  # local dates are now in the default time zone
        forget_member_day(state)
    state.birthday_due_ms = None
    return []


def _order_paid(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Earn floor(amount * multiplier of the tier held before the order); count the spend."""
    payload = event.payload
    if known_order(state, payload.order_id, policy) is not None:
        return []
    numerator, denominator = policy.earn.multiplier[state.tier].as_integer_ratio()
    points = payload.amount_minor * numerator // (denominator * 100)
    state.orders[payload.order_id] = [event.occurred_at_ms, payload.amount_minor, 0, points, 0, 0]
    state.lifetime_spend_minor += payload.amount_minor
    count_order_spend(state, event.occurred_at_ms, payload.amount_minor, policy, orders_change=1)
    if state.last_purchase_ms is None or event.occurred_at_ms > state.last_purchase_ms:
        state.last_purchase_ms = event.occurred_at_ms
    if not points:
        return []
    return [credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "earn", event.event_id)]


def _order_refunded(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Reverse floor(earned * refunded_so_far / paid) cumulatively; refunds past the paid amount are capped."""
    order = known_order(state, event.payload.order_id, policy)
    if order is None:
        return [Effect("notice", {"notice": "refund_unknown_order", "source_event_id": event.event_id})]
    refunded = min(order[PAID_MINOR], order[REFUNDED_MINOR] + event.payload.amount_minor)
    if refunded == order[REFUNDED_MINOR]:
        return []
    state.lifetime_spend_minor -= refunded - order[REFUNDED_MINOR]
    # A full refund takes the order out of F (paid orders not fully refunded).
    count_order_spend(state, order[PAID_AT_MS], order[REFUNDED_MINOR] - refunded, policy,
                      orders_change=-1 if refunded == order[PAID_MINOR] else 0)
    order[REFUNDED_MINOR] = refunded
    reversal = order[EARNED_POINTS] * refunded // order[PAID_MINOR] - order[REVERSED_POINTS]
    order[REVERSED_POINTS] += reversal
    if not reversal:
        return []
    return [debit(state, reversal, event.occurred_at_ms, "reverse", event.event_id)]


def _redemption(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Redeem when the balance covers it, else reject; a repeated redemption_id changes nothing."""
    payload = event.payload
    if _remembered_id(state.redemption_ids, payload.redemption_id, state, policy):
        return []
    state.redemption_ids[payload.redemption_id] = event.occurred_at_ms
    if payload.points <= state.points_balance:
        return [debit(state, payload.points, event.occurred_at_ms, "redeem", event.event_id)]
    return [Effect("update", {
        "customer_id": state.customer_id, "kind": "redemption_rejected", "reason": "insufficient_points",
        "redemption_id": payload.redemption_id, "points": payload.points,
        "at": format_ms(event.occurred_at_ms), "source_event_id": event.event_id,
    })]


def _daily_bonus(counter: str, points_of: Callable[[Policy], int], max_of: Callable[[Policy], int]):
    """Build a handler that credits a bonus at most max times per customer-local day."""
    def handle(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
        tz_name = state.timezone or policy.campaigns.default_timezone
        day = local_date(event.occurred_at_ms, tz_name).isoformat()
        if day < _first_counted_day(state, policy, tz_name, 0):
            return []  # a day whose count is no longer kept: the cap cannot be checked, so no bonus
        key = f"{counter}|{day}"
        count = state.daily_counts.get(key, 0)
        points = points_of(policy)
        if count >= max_of(policy) or not points:
            return []
        state.daily_counts[key] = count + 1
        return [credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "bonus", event.event_id)]
    return handle


def _review(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Reward the first review of an order the customer has paid."""
    order = known_order(state, event.payload.order_id, policy)
    if order is None or order[REVIEWED] or not policy.earn.review_points:
        return []
    order[REVIEWED] = 1
    return [credit(state, policy.earn.review_points, event.occurred_at_ms, policy.lots.expiry_days,
                   "bonus", event.event_id)]


def _adjust(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """Apply a manual adjustment: positive becomes a lot, negative is taken like a reversal."""
    points = event.payload.points
    if points > 0:
        return [credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "adjust", event.event_id)]
    if points < 0:
        return [debit(state, -points, event.occurred_at_ms, "adjust", event.event_id)]
    return []


def _nothing(state: CustomerState, event: EventBase, policy: Policy) -> list[Effect]:
    """The event only counts as an interaction."""
    return []


def _prune(state: CustomerState, policy: Policy) -> None:
    """Drop memory older than the retention policy, so a customer's state stays bounded."""
    now = state.as_of_ms
    retention = policy.retention
    ids_since = now - retention.event_id_days * DAY_MS
    state.seen_event_ids = _drop_older(state.seen_event_ids, ids_since, lambda t: t)
    state.redemption_ids = _drop_older(state.redemption_ids, ids_since, lambda t: t)
    state.orders = _drop_older(state.orders, now - retention.order_days * DAY_MS, lambda o: o[PAID_AT_MS])
    # Two spare days: a later change of time zone may move the first counted day back by one.
    days_since = _first_counted_day(state, policy, state.timezone or policy.campaigns.default_timezone, 2)
    counts = state.daily_counts
    if counts and next(iter(counts)).split("|", 1)[1] < days_since:
        state.daily_counts = {k: n for k, n in counts.items() if k.split("|", 1)[1] >= days_since}
    prune_rewards(state, policy)


def _first_counted_day(state: CustomerState, policy: Policy, tz_name: str, spare_days: int) -> str:
    """Return the first local day whose bonus count is kept (the daily_counter_days before as_of)."""
    return local_date(state.as_of_ms - (policy.retention.daily_counter_days + spare_days) * DAY_MS,
                      tz_name).isoformat()


def _drop_older(entries: dict, since_ms: int, time_of: Callable) -> dict:
    """Return entries without those older than since_ms; a no-op unless the first (oldest) entry is."""
    # Entries are kept in arrival order, so the first is the oldest unless a late one came after it:
    # checking only the first keeps pruning cheap, and a late entry goes when those before it do.
    first = next(iter(entries.values()), None)
    if first is None or time_of(first) >= since_ms:
        return entries
    return {key: value for key, value in entries.items() if time_of(value) >= since_ms}


_APPLY: dict[str, Callable[[CustomerState, EventBase, Policy], list[Effect]]] = {
    "customer.registered": _profile,
    "customer.profile_updated": _profile,
    "customer.erased": _erase,
    "order.paid": _order_paid,
    "order.refunded": _order_refunded,
    "redemption.requested": _redemption,
    "customer.checked_in": _daily_bonus("checkin", lambda p: p.earn.checkin_points, lambda p: p.earn.checkin_daily_max),
    "content.shared": _daily_bonus("share", lambda p: p.earn.share_points, lambda p: p.earn.share_daily_max),
    "review.posted": _review,
    "customer.visited": _nothing,
    "points.adjusted": _adjust,
    "reward.claimed": claim_reward,
    "coupon.used": use_coupon,
}
