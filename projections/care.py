"""Care campaigns: points-expiring reminders, tier-upgrade congratulations and member days (docs/rules.md).

Reminders and member days are time rules: each customer carries its next due time for them, so a tick
visits only the customers they concern (a member day: only the customers who qualify for it).
"""
from __future__ import annotations

from bisect import bisect_left
from datetime import date, timedelta
from typing import Optional

from projections.days import local_day
from projections.effects import Effect
from projections.state import LOT_EXPIRY, CustomerState, Lot
from projections.triggers import campaign
from schemas.policy import TIERS, Policy
from schemas.timeutil import DAY_MS, format_ms, local_midnight_ms

_ONE_DAY = timedelta(days=1)


def _tz(state: CustomerState, policy: Policy) -> str:
    return state.timezone or policy.campaigns.default_timezone


# ---- points_expiring: remind_days before a local date on which at least min_points expire ----------------
# The next date to check is kept as remind_lot_ms (one of its lots) and remind_due_ms (when to check it):
# only a date that holds min_points when it is chosen, so a tick visits no customer without a reminder
# to send. Credits to earlier dates and debits make them be chosen again (projections/points.py).

def _remind_at_ms(lot_ms: int, tz_name: str, policy: Policy) -> int:
    """Return local midnight remind_days before the local date on which a lot expires."""
    day = local_day(lot_ms, tz_name)
    return local_midnight_ms(day - timedelta(days=policy.campaigns.points_expiring.remind_days), tz_name)


def reminder_due_ms(state: CustomerState, policy: Policy) -> Optional[int]:
    """Return when the next expiry reminder is checked (chosen again after a credit or debit); None if none.

    Only while reminders are on (next_due_ms asks): otherwise a time set earlier would stay due for ever.
    """
    if state.remind_due_ms is None and state.remind_lot_ms is not None:
        lots = state.lots
        tz_name = _tz(state, policy)
        start = bisect_left(lots, state.remind_lot_ms, key=LOT_EXPIRY)
        index = _next_reminded_lot(lots, start, state.reminded_until_ms, tz_name,
                                   policy.campaigns.points_expiring.min_points)
        _set_reminder(state, index, tz_name, policy)
    return state.remind_due_ms


def _set_reminder(state: CustomerState, index: int, tz_name: str, policy: Policy) -> None:
    """Make lots[index] a lot of the next date to remind of (none if index is past the end)."""
    if index < len(state.lots):
        state.remind_lot_ms = state.lots[index].expires_at_ms
        state.remind_due_ms = _remind_at_ms(state.remind_lot_ms, tz_name, policy)
    else:  # no date holds min_points now; a credit to one chooses it (projections/points.py)
        state.remind_lot_ms = state.remind_due_ms = None


# A local date lasts at most 25 hours (the day a clock is set back), so the lots of one date all lie
# within 25 hours of each other: a quick bound, without time zones, on what a date may hold.
_DATE_SPAN_MS = 25 * 3_600_000


def _date_points(lots: list[Lot], index: int, since_ms: int, tz_name: str) -> tuple[date, int, int, int, int]:
    """Return the local date of lots[index], its points (of lots from since_ms), its first lot, the lot after it,
    and the end of the date."""
    day = local_day(lots[index].expires_at_ms, tz_name)
    first = bisect_left(lots, max(local_midnight_ms(day, tz_name), since_ms), key=LOT_EXPIRY)
    day_end_ms = local_midnight_ms(day + _ONE_DAY, tz_name)
    points, after = 0, first
    while after < len(lots) and lots[after].expires_at_ms < day_end_ms:
        points += lots[after].points
        after += 1
    return day, points, first, after, day_end_ms


def _next_reminded_lot(lots: list[Lot], index: int, since_ms: int, tz_name: str, min_points: int) -> int:
    """Return a lot of the first local date from lots[index] on holding min_points (len if none)."""
    count = len(lots)
    while index < count:
        lot = lots[index]
        expires_ms, points = lot.expires_at_ms, lot.points
        if points >= min_points:
            return index  # a lot alone holds enough: its date does
        # Its neighbours within a date's span, first without time zones: most small lots end here.
        low_ms, high_ms = max(expires_ms - _DATE_SPAN_MS + 1, since_ms), expires_ms + _DATE_SPAN_MS
        near = index - 1
        while near >= 0 and lots[near].expires_at_ms >= low_ms and points < min_points:
            points += lots[near].points
            near -= 1
        near = index + 1
        while near < count and lots[near].expires_at_ms < high_ms and points < min_points:
            points += lots[near].points
            near += 1
        if points < min_points:
            index += 1
            continue
        _, points, first, after, _ = _date_points(lots, index, since_ms, tz_name)
        if points >= min_points:
            return first
        index = after
    return index


def remind_expiring(state: CustomerState, at_ms: int, clock_ms: int, policy: Policy) -> list[Effect]:
    """At a reminder's time, remind of the points expiring on its local date if they are at least min_points.

    Each date is checked once. A reminder whose points already expired by the clock (a partition
    catching up) is not sent.
    """
    due_ms = state.remind_due_ms
    if due_ms is None or due_ms > at_ms or not policy.campaigns.reminders_on:
        return []
    rules = policy.campaigns.points_expiring
    tz_name = _tz(state, policy)
    lots = state.lots
    since_ms = state.reminded_until_ms
    index = bisect_left(lots, state.remind_lot_ms, key=LOT_EXPIRY)
    if index == len(lots) or lots[index].expires_at_ms != state.remind_lot_ms:
        # the chosen date's lots expired already (a late credit): choose again, checked at its own time
        _set_reminder(state, _next_reminded_lot(lots, bisect_left(lots, since_ms, key=LOT_EXPIRY), since_ms, tz_name,
                                                rules.min_points), tz_name, policy)
        return []
    day, points, first, after, day_end_ms = _date_points(lots, index, since_ms, tz_name)
    # The dates between since_ms and this one held fewer than min_points when this one was chosen, and a
    # credit to one of them would have chosen it instead: they are done with too.
    state.reminded_until_ms = day_end_ms
    effects = []
    if points >= rules.min_points and clock_ms < lots[first].expires_at_ms:
        effects.append(campaign(state, "points_expiring", day.isoformat(), at_ms, {
            "points": points, "expiry_date": day.isoformat(), "expires_at": format_ms(lots[first].expires_at_ms)}))
    _set_reminder(state, _next_reminded_lot(lots, after, day_end_ms, tz_name, rules.min_points), tz_name, policy)
    return effects


def forget_reminder_time(state: CustomerState, old_tz: Optional[str], policy: Policy) -> None:
    """Choose the next date to remind of again (the time zone changed, so the local dates did).

    The dates checked so far end, in the old zone, on the local date of the last checked instant; in the
    new zone, checking starts on the date after that one. A reminder id names a local date, so a date is
    never reminded of twice (docs/rules.md): the lots of the rest of a date moved onto it expire unreminded.
    """
    if state.reminded_until_ms:
        old_tz = old_tz or policy.campaigns.default_timezone
        last_checked = local_day(state.reminded_until_ms - 1, old_tz)
        state.reminded_until_ms = max(state.reminded_until_ms,
                                      local_midnight_ms(last_checked + _ONE_DAY, _tz(state, policy)))
    index = bisect_left(state.lots, state.reminded_until_ms, key=LOT_EXPIRY)
    state.remind_lot_ms = state.lots[index].expires_at_ms if index < len(state.lots) else None
    state.remind_due_ms = None


# ---- tier_upgraded: congratulate on a rise, not on a return within the cooldown ---------------------------

def tier_moved(state: CustomerState, old: str, new: str, at_ms: int, policy: Policy) -> list[Effect]:
    """Note a tier change; on a rise, congratulate unless the customer returns within the cooldown."""
    left_ms = state.tier_left_ms
    rank_old, rank_new = TIERS.index(old), TIERS.index(new)
    if rank_new < rank_old:
        for tier in TIERS[rank_new + 1:rank_old + 1]:
            if tier in left_ms:
                left_ms[tier] = at_ms
        return []
    left_at = left_ms.get(new)
    left_ms[new] = 0
    if left_at and at_ms - left_at < policy.campaigns.tier_upgrade_cooldown_days * DAY_MS:
        return []
    if "tier_upgraded" not in policy.campaigns.enabled:
        return []
    # Period: the UTC date and the tier, so that two rises on one day have two ids.
    return [campaign(state, "tier_upgraded", f"{format_ms(at_ms)[:10]}:{new}", at_ms, {"from": old, "to": new})]


# ---- member_day: at local midnight of a member day, for the customers who qualify -------------------------

def _qualifies(state: CustomerState, policy: Policy) -> bool:
    rules = policy.campaigns.member_day
    return policy.campaigns.member_days_on and state.status in rules.statuses and state.tier in rules.tiers


def _next_member_day(from_day: date, policy: Policy) -> Optional[date]:
    """Return the first member day on or after from_day (None if there is none)."""
    rules = policy.campaigns.member_day
    candidates = []
    if rules.monthly_day is not None:
        day = from_day.replace(day=rules.monthly_day)
        if day < from_day:
            day = (day.replace(day=1) + timedelta(days=32)).replace(day=rules.monthly_day)
        candidates.append(day)
    index = bisect_left(rules.dates, from_day)
    if index < len(rules.dates):
        candidates.append(rules.dates[index])
    return min(candidates, default=None)


def _member_day_from(state: CustomerState, from_ms: int, policy: Policy) -> Optional[int]:
    """Return the local midnight of the first member day at or after from_ms (None if there is none)."""
    tz_name = _tz(state, policy)
    day = _next_member_day(local_day(from_ms, tz_name), policy)
    if day is not None and local_midnight_ms(day, tz_name) < from_ms:
        day = _next_member_day(day + _ONE_DAY, policy)
    return None if day is None else local_midnight_ms(day, tz_name)


def member_day_due_ms(state: CustomerState, policy: Policy) -> Optional[int]:
    """Return the next member day's local midnight if the customer qualifies now, else None.

    A member day that passed while the customer did not qualify is skipped here, when they next qualify.
    """
    if not _qualifies(state, policy):
        return None
    due_ms = state.member_day_due_ms
    if due_ms is None or due_ms < state.as_of_ms:
        last_ms = policy.campaigns.member_day.last_midnight_bound_ms
        if last_ms is not None and state.as_of_ms > last_ms:
            return None  # every member day has passed
        # Strictly after as_of: a member day at exactly this instant has been handled, or was not theirs.
        due_ms = state.member_day_due_ms = _member_day_from(state, state.as_of_ms + 1, policy)
    return due_ms


def celebrate_member_day(state: CustomerState, at_ms: int, clock_ms: int, policy: Policy) -> list[Effect]:
    """At a member day's local midnight, fire for a qualifying customer, at most birthday_grace_days late."""
    due_ms = state.member_day_due_ms
    if due_ms is None or due_ms > at_ms:
        return []
    effects = []
    # due < at: the walk stopped later for another rule, so the customer did not qualify at that midnight.
    if due_ms == at_ms and _qualifies(state, policy) \
            and clock_ms - due_ms <= policy.campaigns.birthday_grace_days * DAY_MS:
        tz_name = _tz(state, policy)
        day = local_day(due_ms, tz_name).isoformat()
        effects.append(campaign(state, "member_day", day, at_ms, {"local_date": day}))  # no time zone: outputs carry no personal field
    state.member_day_due_ms = _member_day_from(state, max(due_ms + 1, at_ms), policy)
    return effects


def forget_member_day(state: CustomerState, old_tz: Optional[str], policy: Policy) -> None:
    """Move the next member day to the new time zone (the time zone changed).

    The next member day keeps its date: found again from the clock in a zone to the west, the date
    already celebrated could come round once more, and a trigger id names the date.
    """
    due_ms = state.member_day_due_ms
    if due_ms is None:
        return
    day = local_day(due_ms, old_tz or policy.campaigns.default_timezone)
    state.member_day_due_ms = local_midnight_ms(day, _tz(state, policy))
