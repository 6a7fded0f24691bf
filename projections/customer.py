"""The customer decider: what one event, or the passing of time, does to a customer's state; deterministic.

Production calls `evolve_unseen` and `pass_time_in_place` (from the partition fold, projections/partition.py):
they change the state they are given in place, and the fold, which owns its states, checks duplicates first.
`evolve` and `pass_time` are the pure forms, (state, event, clock) -> (state, effects) on a clone: only the
tests call them, as the reference that never changes its input.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from projections.care import forget_member_day, forget_reminder_time
from projections.checkout import (
    ACCEPTED, REJECTED, add_pending, available_points, capture_for_order, capture_hold, ledger_detail, place_hold,
    prune_commands, release_hold, remember_outcome, take_back_pending,
)
from projections.constants import figures
from projections.days import local_day
from projections.effects import Effect, RefundOfUnknownOrder, RequestRefused
from projections.points import credit, debit
from projections.rewards import claim_reward, prune_rewards, use_coupon
from projections.state import CustomerState, Order
from projections.timeline import count_order_spend, next_due_ms, reevaluate_into, refresh_birthday_due, walk_due_times
from schemas.events import (
    INTERACTION_TYPES, ContentShared, CouponUsed, CustomerCheckedIn, CustomerErased, CustomerProfileUpdated,
    CustomerRegistered, CustomerVisited, EventBase, HoldCaptured, HoldReleased, HoldRequested, OrderPaid, OrderRefunded, PointsAdjusted, RedemptionRequested,
    RewardClaimed, ReviewPosted,
)
from schemas.outputs import redemption_rejected
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms

DEFAULT_POLICY = Policy()
_PRUNE_EVERY_EVENTS = 32  # prune old redemption ids, orders and counters every this many events (amortised)
# Event ids go in bulk once the oldest is this far past its window: a customer's are rebuilt at most daily.
_EVENT_ID_SLACK_MS = DAY_MS


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


def known_order(state: CustomerState, order_id: str, policy: Policy) -> Optional[Order]:
    """Return the order if it is still known (clock < paid_at + order_days), else None."""
    order = state.orders.get(order_id)
    if order is None or state.as_of_ms >= order.paid_at_ms + policy.retention.order_days * DAY_MS:
        return None
    return order


def _remembered_id(ids: dict[str, int], key: str, state: CustomerState, policy: Policy) -> bool:
    """Tell whether a redemption id is still remembered (clock < its time + redemption_id_days)."""
    seen_ms = ids.get(key)
    return seen_ms is not None and state.as_of_ms < seen_ms + policy.retention.redemption_id_days * DAY_MS


def evolve(state: Optional[CustomerState], event: EventBase, clock_ms: int,
           policy: Policy = DEFAULT_POLICY) -> tuple[CustomerState, list[Effect]]:
    """Apply one event on a clone of the state at clock_ms (a duplicate: the same state, no effects); tests only."""
    if is_duplicate(state, event, clock_ms, policy):
        return state, []
    return evolve_unseen(state.clone() if state is not None else None, event, clock_ms, policy)


def evolve_unseen(state: Optional[CustomerState], event: EventBase, clock_ms: int,
                  policy: Policy = DEFAULT_POLICY) -> tuple[CustomerState, list[Effect]]:
    """Apply one event the caller found not to be a duplicate, changing `state` itself (what the fold calls)."""
    if event.occurred_at_ms > clock_ms:
        clock_ms = event.occurred_at_ms
    if state is None:
        state = initial_state(event.customer_id, event.occurred_at_ms)
        state.as_of_ms = clock_ms  # nothing happened to a new customer before its first event: no time to walk
        effects = []
    elif state.next_due_ms is not None and state.next_due_ms <= clock_ms:
        effects = walk_due_times(state, clock_ms, policy, event.event_id)
    else:  # nothing due: what walk_due_times does then, without the call (every event passes here)
        effects = []
        if clock_ms > state.as_of_ms:
            state.as_of_ms = clock_ms
    event_id, occurred_ms = event.event_id, event.occurred_at_ms  # read once: a model's attribute costs more
    ids = state.seen_event_ids
    ids[event_id] = occurred_ms
    if next(iter(ids.values())) < state.as_of_ms - policy.retention.event_id_days * DAY_MS - _EVENT_ID_SLACK_MS:
        _forget_event_ids(state, policy)
    state.events_applied += 1
    if event.event_type in INTERACTION_TYPES and (state.last_interaction_ms is None
                                                   or occurred_ms > state.last_interaction_ms):
        state.last_interaction_ms = occurred_ms
    more = _HANDLERS[type(event)](state, event, policy)
    if more:
        effects.extend(more)
    if state.events_applied % _PRUNE_EVERY_EVENTS == 0:
        _prune(state, policy)
    reevaluate_into(effects, state, state.as_of_ms, policy, event_id)
    due_ms = state.next_due_ms = next_due_ms(state, policy)
    if due_ms is not None and due_ms <= clock_ms:  # e.g. a late lot already expired (skipped when not: hot path)
        effects.extend(walk_due_times(state, clock_ms, policy, event_id))
    return state, effects


def pass_time(state: CustomerState, clock_ms: int, policy: Policy = DEFAULT_POLICY,
              source_event_id: Optional[str] = None) -> tuple[CustomerState, list[Effect]]:
    """Move a clone of the customer to a later clock, firing what fell due (unchanged if nothing is); tests only."""
    if state.next_due_ms is None or state.next_due_ms > clock_ms:
        return state, []
    return pass_time_in_place(state.clone(), clock_ms, policy, source_event_id)


def pass_time_in_place(state: CustomerState, clock_ms: int, policy: Policy = DEFAULT_POLICY,
                       source_event_id: Optional[str] = None) -> tuple[CustomerState, list[Effect]]:
    """Move a customer to a later clock, firing what fell due, changing `state` itself (what the fold calls)."""
    if state.next_due_ms is None or state.next_due_ms > clock_ms:
        return state, []
    effects = walk_due_times(state, clock_ms, policy, source_event_id)
    _forget_event_ids(state, policy)  # the state is written anyway: a quiet customer's old ids go too
    return state, effects


# ---- the handlers, one per event class (each sees its own payload) ----------------------------------------

def _update_profile(state: CustomerState, event: CustomerRegistered | CustomerProfileUpdated,
                    policy: Policy) -> list[Effect]:
    """Set the fields the event carries (an explicit null clears one)."""
    payload = event.payload
    if "birthday" in payload.model_fields_set:
        state.birthday = payload.birthday
    if "timezone" in payload.model_fields_set and payload.timezone != state.timezone:
        old_tz, state.timezone = state.timezone, payload.timezone
        forget_reminder_time(state, old_tz, policy)  # local dates moved
        forget_member_day(state, old_tz, policy)
    refresh_birthday_due(state, policy)
    return []


def _erase(state: CustomerState, event: CustomerErased, policy: Policy) -> list[Effect]:
    """Forget personal data; points, tier and ledger stay."""
    state.birthday = None
    if state.timezone is not None:
        old_tz, state.timezone = state.timezone, None
        forget_reminder_time(state, old_tz, policy)  # local dates are now in the default time zone
        forget_member_day(state, old_tz, policy)
    state.birthday_due_ms = None
    return []


def _pay_order(state: CustomerState, event: OrderPaid, policy: Policy) -> list[Effect]:
    """Earn floor(amount * multiplier of the tier held before the order); count the spend."""
    payload = event.payload
    if known_order(state, payload.order_id, policy) is not None:
        return []
    numerator, denominator = figures(policy).earn_ratio[state.tier]
    points = payload.amount_minor * numerator // (denominator * 100)
    # The hold's points are spent at this checkout, before the order earns.
    captured = capture_for_order(state, event, policy) if payload.hold_id is not None else []
    state.orders[payload.order_id] = Order(event.occurred_at_ms, payload.amount_minor, 0, points, 0, False)
    state.lifetime_spend_minor += payload.amount_minor
    count_order_spend(state, event.occurred_at_ms, payload.amount_minor, policy, orders_change=1)
    if state.last_purchase_ms is None or event.occurred_at_ms > state.last_purchase_ms:
        state.last_purchase_ms = event.occurred_at_ms
    if not points:
        return captured
    if policy.earn.pending_days:
        add_pending(state, payload.order_id, points, event.occurred_at_ms, policy)
    # The lot counts from the order, not from the release: pending time is part of a lot's life (docs/rules.md).
    return [*captured, credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "earn", event.event_id)]


def _refund_order(state: CustomerState, event: OrderRefunded, policy: Policy) -> list[Effect]:
    """Reverse floor(earned * refunded_so_far / paid) cumulatively; refunds past the paid amount are capped."""
    order = known_order(state, event.payload.order_id, policy)
    if order is None:
        return [RefundOfUnknownOrder(event.event_id)]
    refunded = min(order.paid_minor, order.refunded_minor + event.payload.amount_minor)
    if refunded == order.refunded_minor:
        return []
    state.lifetime_spend_minor -= refunded - order.refunded_minor
    # A full refund takes the order out of F (paid orders not fully refunded).
    count_order_spend(state, order.paid_at_ms, order.refunded_minor - refunded, policy,
                      orders_change=-1 if refunded == order.paid_minor else 0)
    order.refunded_minor = refunded
    reversal = order.earned_points * refunded // order.paid_minor - order.reversed_points
    order.reversed_points += reversal
    if not reversal:
        return []
    if state.pending:
        take_back_pending(state, event.payload.order_id, reversal)
    return [debit(state, reversal, event.occurred_at_ms, "reverse", event.event_id)]


def _redeem_points(state: CustomerState, event: RedemptionRequested, policy: Policy) -> list[Effect]:
    """Redeem when the spendable points cover it, else reject; a repeated redemption_id changes nothing."""
    payload = event.payload
    if _remembered_id(state.redemption_ids, payload.redemption_id, state, policy):
        return []
    state.redemption_ids[payload.redemption_id] = event.occurred_at_ms
    key, request = f"redeem:{payload.redemption_id}", [payload.points]
    if payload.points <= available_points(state):
        entry = debit(state, payload.points, event.occurred_at_ms, "redeem", event.event_id)
        remember_outcome(state, key, event.occurred_at_ms, request, ACCEPTED, ledger_detail(entry))
        return [entry]
    remember_outcome(state, key, event.occurred_at_ms, request, REJECTED, {"reason": "insufficient_points"})
    return [RequestRefused(redemption_rejected(
        customer_id=state.customer_id, reason="insufficient_points", redemption_id=payload.redemption_id,
        points=payload.points, at=format_ms(event.occurred_at_ms), source_event_id=event.event_id),
        "redemption_rejected", "insufficient_points")]


def _reward_check_in(state: CustomerState, event: CustomerCheckedIn, policy: Policy) -> list[Effect]:
    """Credit the check-in bonus, at most checkin_daily_max times per customer-local day."""
    return _daily_bonus(state, event, policy, "checkin", policy.earn.checkin_points, policy.earn.checkin_daily_max)


def _reward_share(state: CustomerState, event: ContentShared, policy: Policy) -> list[Effect]:
    """Credit the share bonus, at most share_daily_max times per customer-local day."""
    return _daily_bonus(state, event, policy, "share", policy.earn.share_points, policy.earn.share_daily_max)


def _daily_bonus(state: CustomerState, event: EventBase, policy: Policy, counter: str, points: int,
                 daily_max: int) -> list[Effect]:
    """Credit a bonus unless the counter reached daily_max on the customer-local day of the event."""
    tz_name = state.timezone or policy.campaigns.default_timezone
    at_ms = event.occurred_at_ms
    day = local_day(at_ms, tz_name).isoformat()
    # Two days inside the kept days, the event's local date is too (a local date lags its instant by less
    # than two days): only a very late event needs the first counted day.
    if at_ms < state.as_of_ms - (policy.retention.daily_counter_days - 2) * DAY_MS \
            and day < _first_counted_day(state, policy, tz_name, 0):
        return []  # a day whose count is no longer kept: the cap cannot be checked, so no bonus
    key = (counter, day)
    count = state.daily_counts.get(key, 0)
    if count >= daily_max or not points:
        return []
    state.daily_counts[key] = count + 1
    return [credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "bonus", event.event_id)]


def _reward_review(state: CustomerState, event: ReviewPosted, policy: Policy) -> list[Effect]:
    """Reward the first review of an order the customer has paid."""
    order = known_order(state, event.payload.order_id, policy)
    if order is None or order.reviewed or not policy.earn.review_points:
        return []
    order.reviewed = True
    return [credit(state, policy.earn.review_points, event.occurred_at_ms, policy.lots.expiry_days,
                   "bonus", event.event_id)]


def _adjust_points(state: CustomerState, event: PointsAdjusted, policy: Policy) -> list[Effect]:
    """Apply a manual adjustment: positive becomes a lot, negative is taken like a reversal."""
    points = event.payload.points
    if points > 0:
        return [credit(state, points, event.occurred_at_ms, policy.lots.expiry_days, "adjust", event.event_id)]
    if points < 0:
        return [debit(state, -points, event.occurred_at_ms, "adjust", event.event_id)]
    return []


def _only_interaction(state: CustomerState, event: CustomerVisited, policy: Policy) -> list[Effect]:
    """Change nothing more: a visit only counts as an interaction (evolve_unseen notes it)."""
    return []


# ---- memory kept bounded ----------------------------------------------------------------------------------

def _prune(state: CustomerState, policy: Policy) -> None:
    """Drop memory older than the retention policy, so a customer's state stays bounded."""
    now = state.as_of_ms
    retention = policy.retention
    state.redemption_ids = _drop_older(state.redemption_ids, now - retention.redemption_id_days * DAY_MS,
                                       lambda t: t)
    state.orders = _drop_older(state.orders, now - retention.order_days * DAY_MS, lambda order: order.paid_at_ms)
    # Two spare days: a later change of time zone may move the first counted day back by one.
    days_since = _first_counted_day(state, policy, state.timezone or policy.campaigns.default_timezone, 2)
    counts = state.daily_counts
    if counts and next(iter(counts))[1] < days_since:
        state.daily_counts = {key: n for key, n in counts.items() if key[1] >= days_since}
    prune_rewards(state, policy)
    prune_commands(state, policy)


def _forget_event_ids(state: CustomerState, policy: Policy) -> None:
    """Drop the event ids past their window, once the oldest is _EVENT_ID_SLACK_MS past it."""
    ids = state.seen_event_ids
    since_ms = state.as_of_ms - policy.retention.event_id_days * DAY_MS
    first = next(iter(ids.values()), None)
    if first is not None and first < since_ms - _EVENT_ID_SLACK_MS:
        state.seen_event_ids = {key: at_ms for key, at_ms in ids.items() if at_ms >= since_ms}


def _first_counted_day(state: CustomerState, policy: Policy, tz_name: str, spare_days: int) -> str:
    """Return the first local day whose bonus count is kept (the daily_counter_days before as_of)."""
    return local_day(state.as_of_ms - (policy.retention.daily_counter_days + spare_days) * DAY_MS,
                      tz_name).isoformat()


def _drop_older(entries: dict, since_ms: int, time_of: Callable) -> dict:
    """Return entries without those older than since_ms; a no-op unless the first (oldest) entry is."""
    # Entries are kept in arrival order, so the first is the oldest unless a late one came after it:
    # checking only the first keeps pruning cheap, and a late entry goes when those before it do.
    first = next(iter(entries.values()), None)
    if first is None or time_of(first) >= since_ms:
        return entries
    return {key: value for key, value in entries.items() if time_of(value) >= since_ms}


_HANDLERS: dict[type[EventBase], Callable[[CustomerState, Any, Policy], list[Effect]]] = {
    CustomerRegistered: _update_profile,
    CustomerProfileUpdated: _update_profile,
    CustomerErased: _erase,
    OrderPaid: _pay_order,
    OrderRefunded: _refund_order,
    RedemptionRequested: _redeem_points,
    CustomerCheckedIn: _reward_check_in,
    ContentShared: _reward_share,
    ReviewPosted: _reward_review,
    CustomerVisited: _only_interaction,
    PointsAdjusted: _adjust_points,
    RewardClaimed: claim_reward,
    CouponUsed: use_coupon,
    HoldRequested: place_hold,
    HoldCaptured: capture_hold,
    HoldReleased: release_hold,
}
