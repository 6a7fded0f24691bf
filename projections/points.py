"""Points movements on a state being built (changed in place): credits into lots, debits oldest lot first, expiry."""
from __future__ import annotations

from bisect import bisect_left
from typing import Optional

from projections.state import CustomerState, Effect
from schemas.timeutil import DAY_MS, format_ms


def ledger_effect(state: CustomerState, kind: str, points: int, at_ms: int,
                  source_event_id: Optional[str]) -> Effect:
    """Record a ledger entry with a deterministic id (customer id and per-customer sequence)."""
    state.ledger_seq += 1
    return Effect("ledger", {
        "entry_id": f"{state.customer_id}:{state.ledger_seq}",
        "customer_id": state.customer_id,
        "occurred_at": format_ms(at_ms),
        "kind": kind,
        "points": points,
        "balance_after": state.points_balance,
        "source_event_id": source_event_id,
    })


def credit(state: CustomerState, points: int, at_ms: int, expiry_days: int, kind: str,
           source_event_id: Optional[str]) -> Effect:
    """Add points: repay debt first, the rest becomes a lot expiring expiry_days after at_ms."""
    repaid = min(state.debt_points, points)
    state.debt_points -= repaid
    rest = points - repaid
    if rest:
        expires_ms = at_ms + expiry_days * DAY_MS
        lots = state.lots
        index = bisect_left(lots, [expires_ms])
        if index < len(lots) and lots[index][0] == expires_ms:
            lots[index][1] += rest
        else:
            lots.insert(index, [expires_ms, rest])
        # A lot on a date not yet checked, before the one the next expiry reminder is set for (or with
        # none set), makes it be chosen again (projections/care.py); a later lot cannot change it.
        if expires_ms >= state.reminded_until_ms and (state.remind_lot_ms is None or expires_ms < state.remind_lot_ms):
            state.remind_lot_ms, state.remind_due_ms = expires_ms, None
    state.points_balance += points
    return ledger_effect(state, kind, points, at_ms, source_event_id)


def debit(state: CustomerState, points: int, at_ms: int, kind: str, source_event_id: str) -> Effect:
    """Take points from the oldest lots first; what the lots cannot cover becomes debt."""
    remaining = points
    lots = state.lots
    while remaining and lots:
        taken = min(lots[0][1], remaining)
        lots[0][1] -= taken
        remaining -= taken
        if lots[0][1] == 0:
            lots.pop(0)
    state.debt_points += remaining
    state.points_balance -= points
    if state.remind_lot_ms is not None and (not lots or lots[0][0] >= state.remind_lot_ms):
        # Oldest first: only a debit that reached the date to remind of may leave it too few points.
        state.remind_due_ms = None
    return ledger_effect(state, kind, -points, at_ms, source_event_id)


def expire_lots(state: CustomerState, until_ms: int, source_event_id: Optional[str]) -> list[Effect]:
    """Remove every lot that expired at or before until_ms, one ledger entry each."""
    effects = []
    while state.lots and state.lots[0][0] <= until_ms:
        expires_ms, points = state.lots.pop(0)
        state.points_balance -= points
        effects.append(ledger_effect(state, "expire", -points, expires_ms, source_event_id))
    return effects


def points_expiring(state: CustomerState) -> list[dict]:
    """List the lots still held, oldest first, as {points, expires_at}."""
    return [{"points": points, "expires_at": format_ms(expires_ms)} for expires_ms, points in state.lots]
