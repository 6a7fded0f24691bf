"""Time rules (status, tier, expiry, birthdays, coupons, care campaigns), fired as the clock passes their due times."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date
from typing import Optional

from projections.care import celebrate_member_day, member_day_due_ms, remind_expiring, reminder_due_ms, tier_moved
from projections.checkout import expire_holds, release_pending
from projections.constants import figures
from projections.days import local_day
from projections.effects import BecameDormant, Effect, StatusChanged, TierChanged, Transition, ValueChanged
from projections.points import expire_lots
from projections.rewards import expire_coupons
from projections.state import CustomerState, Rfm
from projections.value import value_for
from projections.triggers import campaign
from schemas.outputs import transition
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms, local_midnight_ms


def tier_for(spend_minor: int, policy: Policy) -> str:
    """Return the tier that a trailing net spend earns."""
    if spend_minor >= policy.tier.vip_min_minor:
        return "vip"
    if spend_minor >= policy.tier.premium_min_minor:
        return "premium"
    return "standard"


def status_for(state: CustomerState, at_ms: int, policy: Policy) -> str:
    """Return active, potential or dormant at at_ms."""
    rules = policy.status
    last_interaction = state.last_interaction_ms
    bought_recently = (state.last_purchase_ms is not None
                       and at_ms < state.last_purchase_ms + rules.purchase_window_days * DAY_MS)
    if bought_recently and last_interaction is not None \
            and at_ms < last_interaction + rules.active_interaction_days * DAY_MS:
        return "active"
    # A customer first seen through a non-interaction (e.g. an adjustment) is measured from then.
    quiet_since = last_interaction if last_interaction is not None else state.first_seen_ms
    if at_ms >= quiet_since + rules.dormant_after_days * DAY_MS:
        return "dormant"
    return "potential"


def birthday_midnight_ms(state: CustomerState, year: int, policy: Policy) -> int:
    """Return local midnight of the customer's birthday in that year (29 Feb is 28 Feb otherwise)."""
    month, day = int(state.birthday[-5:-3]), int(state.birthday[-2:])
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        day = 28
    return local_midnight_ms(date(year, month, day), state.timezone or policy.campaigns.default_timezone)


def refresh_birthday_due(state: CustomerState, policy: Policy) -> None:
    """Cache local midnight of the first birthday not yet handled (None without a birthday)."""
    if state.birthday is None:
        state.birthday_due_ms = None
        return
    tz_name = state.timezone or policy.campaigns.default_timezone
    year = max(local_day(state.as_of_ms, tz_name).year - 1, state.birthday_done_year + 1)
    state.birthday_due_ms = birthday_midnight_ms(state, year, policy)


def count_order_spend(state: CustomerState, paid_at_ms: int, net_change_minor: int, policy: Policy,
                      orders_change: int = 0) -> None:
    """Add an order's change of net spend (and of orders counted, for F) if the order is inside the tier window."""
    state.rfm_due_ms = state.as_of_ms  # an order or a refund: the scores are recomputed at once
    leaves_ms = paid_at_ms + policy.tier.window_days * DAY_MS
    if state.as_of_ms < leaves_ms:
        state.window_spend_minor += net_change_minor
        state.window_orders += orders_change
        if state.tier_due_ms is None or leaves_ms < state.tier_due_ms:
            state.tier_due_ms = leaves_ms


def refresh_orders(state: CustomerState, at_ms: int, policy: Policy) -> None:
    """Recompute the trailing spend at at_ms and when the next order leaves the tier window."""
    window_ms = policy.tier.window_days * DAY_MS
    spend = 0
    orders = 0
    due = None
    for order in state.orders.values():
        leaves_ms = order.paid_at_ms + window_ms
        net = order.paid_minor - order.refunded_minor
        if at_ms < leaves_ms and net > 0:
            spend += net
            orders += 1
            if due is None or leaves_ms < due:
                due = leaves_ms
    state.window_spend_minor = spend
    state.window_orders = orders
    state.rfm_due_ms = at_ms
    state.tier_due_ms = due


def next_due_ms(state: CustomerState, policy: Policy) -> Optional[int]:
    """Return the earliest time after as_of at which a time rule may change this customer."""
    now = state.as_of_ms
    rules = figures(policy)
    last_interaction = state.last_interaction_ms
    # Written out candidate by candidate, without tuples: this runs for every event and every due visit.
    # R falls as days pass (rfm_due_ms); F and M change when an order leaves the window (tier_due_ms).
    # The status as of now is known (set with as_of): time alone never makes a customer active, so the
    # ends of the purchase and interaction windows can change only an active one. Skipping them otherwise
    # saves a visit that would change nothing (about one in five due visits on the bench's history).
    best = (state.first_seen_ms if last_interaction is None else last_interaction) + rules.dormant_ms
    if best <= now:
        best = None
    if state.status == "active":
        t = last_interaction + rules.active_ms
        if t > now and (best is None or t < best):
            best = t
        t = state.last_purchase_ms + rules.purchase_ms
        if t > now and (best is None or t < best):
            best = t
    t = state.tier_due_ms
    if t is not None and t > now and (best is None or t < best):
        best = t
    t = state.rfm_due_ms
    if t is not None and t > now and (best is None or t < best):
        best = t
    # A late credit may land already expired, and a birthday may be in reach now: those are due at once;
    # so are a coupon of a late claim, an expiry reminder whose time has passed, a member day just reached.
    lots = state.lots
    soonest = lots[0].expires_at_ms if lots else None
    t = state.birthday_due_ms
    if t is not None and (soonest is None or t < soonest):
        soonest = t
    t = state.coupon_due_ms
    if t is not None and (soonest is None or t < soonest):
        soonest = t
    t = state.hold_due_ms
    if t is not None and (soonest is None or t < soonest):
        soonest = t
    if state.pending:
        t = state.pending[0].release_at_ms
        if soonest is None or t < soonest:
            soonest = t
    if rules.reminders_on:
        t = state.remind_due_ms
        if t is None and state.remind_lot_ms is not None:
            t = reminder_due_ms(state, policy)
        if t is not None and (soonest is None or t < soonest):
            soonest = t
    if rules.member_days_on:
        t = member_day_due_ms(state, policy)
        if t is not None and (soonest is None or t < soonest):
            soonest = t
    if soonest is not None:
        if soonest < now:
            soonest = now  # the latest of "at once" and the soonest of them
        if best is None or soonest < best:
            best = soonest
    return best


def reevaluate_into(effects: list[Effect], state: CustomerState, at_ms: int, policy: Policy,
                    source_event_id: Optional[str]) -> None:
    """Recompute tier, status and value at at_ms and append their changes to effects (win-back on becoming dormant).

    Every event and every due visit passes here: tier_for and status_for are written out (the same rules;
    tests/unit/test_rules_status.py checks they agree).
    """
    tier_before = state.tier
    if state.tier_due_ms is not None and at_ms >= state.tier_due_ms:
        refresh_orders(state, at_ms, policy)  # an order left the window (order events update it themselves)
    spend, rules = state.window_spend_minor, figures(policy)
    tier = "vip" if spend >= rules.vip_min_minor else "premium" if spend >= rules.premium_min_minor else "standard"
    old_tier = state.tier
    if tier != old_tier:
        effects.append(_update(state, TierChanged, old_tier, tier, at_ms, source_event_id))
        state.tier = tier
    last_interaction, last_purchase = state.last_interaction_ms, state.last_purchase_ms
    if last_purchase is not None and at_ms < last_purchase + rules.purchase_ms \
            and last_interaction is not None and at_ms < last_interaction + rules.active_ms:
        status = "active"
    elif at_ms >= (last_interaction if last_interaction is not None else state.first_seen_ms) + rules.dormant_ms:
        status = "dormant"
    else:
        status = "potential"
    if status != state.status:
        effects.append(_update(state, StatusChanged, state.status, status, at_ms, source_event_id))
        state.status = status
        if status == "dormant":
            # Churn by segment: the tier and value class held just before (counted in the metrics only).
            effects.append(BecameDormant(tier_before, state.value, source_event_id))
            effects.extend(_win_back(state, at_ms, policy))
    if state.rfm_due_ms is not None and at_ms >= state.rfm_due_ms:
        effects.extend(_rescore(state, at_ms, policy, source_event_id))
    if tier != old_tier:  # after the status, so a congratulation shows the customer as they now are
        effects.extend(tier_moved(state, old_tier, tier, at_ms, policy))


def _rescore(state: CustomerState, at_ms: int, policy: Policy, source_event_id: Optional[str]) -> list[Effect]:
    """Recompute R, F and M and the value class (when R falls, or after an order event); report a class change."""
    last_purchase = state.last_purchase_ms
    if last_purchase is None:
        state.rfm_due_ms = rfm = None
    else:  # recency_due_ms and rfm_at written out, sharing R's threshold (tests/unit/test_rules_value.py)
        rules = figures(policy)
        limits = rules.recency_days
        index = bisect_left(limits, (at_ms - last_purchase) // DAY_MS)
        # R holds while the whole days since the purchase are at most limits[index]: it falls on day limit + 1.
        state.rfm_due_ms = last_purchase + (limits[index] + 1) * DAY_MS if index < len(limits) else None
        rfm = Rfm(5 - index, 1 + bisect_right(rules.frequency_rising, state.window_orders),
                  1 + bisect_right(rules.monetary_rising_minor, state.window_spend_minor))
    if rfm == state.rfm:
        return []
    state.rfm = rfm  # frozen: clones may share it
    value = value_for(rfm, policy)
    if value == state.value:
        return []
    effect = _update(state, ValueChanged, state.value, value, at_ms, source_event_id)
    state.value = value
    return [effect]


def _update(state: CustomerState, change: type[Transition], old: str, new: str, at_ms: int,
            source: Optional[str]) -> Transition:
    """Build a customer-updates record for a tier, status or value change."""
    return change(transition(customer_id=state.customer_id, kind=change.KIND, from_=old, to=new, at=format_ms(at_ms),
                             source_event_id=source), old, new)


def _win_back(state: CustomerState, at_ms: int, policy: Policy) -> list[Effect]:
    """Fire a win-back unless one fired within the cooldown."""
    cooldown_ms = policy.campaigns.win_back_cooldown_days * DAY_MS
    if state.last_win_back_ms is not None and at_ms - state.last_win_back_ms < cooldown_ms:
        return []
    if "win_back" not in policy.campaigns.enabled:
        return []
    state.last_win_back_ms = at_ms
    period = format_ms(at_ms)[:10]
    details = {"last_interaction_at": format_ms(state.last_interaction_ms) if state.last_interaction_ms else None}
    return [campaign(state, "win_back", period, at_ms, details)]


def _birthday(state: CustomerState, clock_ms: int, policy: Policy) -> list[Effect]:
    """Fire each birthday whose local midnight has passed, if it is at most the grace late; else skip it."""
    effects = []
    # birthday_due_ms is the earliest unhandled birthday (never later than the true one): none in reach
    # means nothing to fire or skip, without the time-zone arithmetic below (every due visit passes here).
    if state.birthday is None or state.birthday_due_ms is None or state.birthday_due_ms > clock_ms:
        return effects
    tz_name = state.timezone or policy.campaigns.default_timezone
    grace_ms = policy.campaigns.birthday_grace_days * DAY_MS
    year = local_day(clock_ms, tz_name).year
    for candidate in (year - 1, year):
        if candidate <= state.birthday_done_year:
            continue
        midnight_ms = birthday_midnight_ms(state, candidate, policy)
        if midnight_ms > clock_ms:
            continue
        state.birthday_done_year = candidate
        refresh_birthday_due(state, policy)
        if clock_ms - midnight_ms <= grace_ms and "birthday" in policy.campaigns.enabled:
            state.birthday_fired_year = candidate
            at_ms = max(midnight_ms, state.as_of_ms)
            # The campaign's local date, never the time zone: output topics are not erased (personal data stays
            # in the customer's state only).
            details = {"local_date": local_day(midnight_ms, tz_name).isoformat()}
            effects.append(campaign(state, "birthday", str(candidate), at_ms, details))
    return effects


def walk_due_times(state: CustomerState, clock_ms: int, policy: Policy, source_event_id: Optional[str]) -> list[Effect]:
    """Walk the state through every due time up to clock_ms, in time order (state is being built)."""
    effects: list[Effect] = []
    due_ms = state.next_due_ms
    while due_ms is not None and due_ms <= clock_ms:
        at_ms = due_ms if due_ms > state.as_of_ms else state.as_of_ms
        # Each rule is called only when its own due time has come (each returns nothing otherwise).
        if state.lots and state.lots[0].expires_at_ms <= at_ms:
            effects.extend(expire_lots(state, at_ms, source_event_id))
        if state.coupon_due_ms is not None and state.coupon_due_ms <= at_ms:
            effects.extend(expire_coupons(state, at_ms, policy, source_event_id))
        if state.hold_due_ms is not None and state.hold_due_ms <= at_ms:
            effects.extend(expire_holds(state, at_ms, source_event_id))
        if state.pending and state.pending[0].release_at_ms <= at_ms:
            effects.extend(release_pending(state, at_ms, source_event_id))
        reevaluate_into(effects, state, at_ms, policy, source_event_id)
        state.as_of_ms = at_ms
        if state.birthday_due_ms is not None and state.birthday_due_ms <= clock_ms:
            effects.extend(_birthday(state, clock_ms, policy))
        if state.remind_due_ms is not None and state.remind_due_ms <= at_ms:
            effects.extend(remind_expiring(state, at_ms, clock_ms, policy))
        if state.member_day_due_ms is not None and state.member_day_due_ms <= at_ms:
            effects.extend(celebrate_member_day(state, at_ms, clock_ms, policy))
        due_ms = state.next_due_ms = next_due_ms(state, policy)
    if clock_ms > state.as_of_ms:
        state.as_of_ms = clock_ms
    return effects
