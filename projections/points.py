"""Points movements on a state being built (changed in place): credits into lots, debits oldest lot first, expiry."""
from __future__ import annotations

from bisect import bisect_left
from typing import Optional

from projections.effects import LedgerEntryMade
from projections.state import LOT_EXPIRY, CustomerState, Lot
from schemas.outputs import ledger_entry
from schemas.timeutil import DAY_MS, format_ms

# A member's readable history is their last entries, kept in the state (bounded); older ones are on the ledger
# topic. Fixed, not a policy: replay under another policy must keep the same history.
HISTORY_ENTRIES = 20


def ledger_effect(state: CustomerState, kind: str, points: int, at_ms: int, source_event_id: Optional[str],
                  reward_id: Optional[str] = None, claim_id: Optional[str] = None) -> LedgerEntryMade:
    """Record a ledger entry with a deterministic id (customer id and per-customer sequence)."""
    seq = state.ledger_seq = state.ledger_seq + 1
    history = state.history
    # Without the source event: for a time rule it is whichever record moved the clock, so the state would
    # depend on where ticks fall (the ledger topic has it, under the same entry id).
    history.append([seq, at_ms, kind, points, state.points_balance])
    if len(history) > HISTORY_ENTRIES:
        del history[0]
    return LedgerEntryMade(ledger_entry(
        entry_id=f"{state.customer_id}:{seq}", customer_id=state.customer_id,
        occurred_at=format_ms(at_ms), kind=kind, points=points, balance_after=state.points_balance,
        source_event_id=source_event_id, reward_id=reward_id, claim_id=claim_id), kind, points)


def credit(state: CustomerState, points: int, at_ms: int, expiry_days: int, kind: str,
           source_event_id: Optional[str], reward_id: Optional[str] = None, claim_id: Optional[str] = None) -> LedgerEntryMade:
    """Add points: repay debt first, the rest becomes a lot expiring expiry_days after at_ms."""
    repaid = min(state.debt_points, points)
    state.debt_points -= repaid
    rest = points - repaid
    if rest:
        expires_ms = at_ms + expiry_days * DAY_MS
        lots = state.lots
        if not lots or lots[-1].expires_at_ms < expires_ms:
            lots.append(Lot(expires_ms, rest))  # the usual case: credits come in time order, so the lot is the last
        else:
            index = bisect_left(lots, expires_ms, key=LOT_EXPIRY)
            if index < len(lots) and lots[index].expires_at_ms == expires_ms:
                lots[index].points += rest
            else:
                lots.insert(index, Lot(expires_ms, rest))
        # A lot on a date not yet checked, before the one the next expiry reminder is set for (or with
        # none set), makes it be chosen again (projections/care.py); a later lot cannot change it.
        if expires_ms >= state.reminded_until_ms and (state.remind_lot_ms is None or expires_ms < state.remind_lot_ms):
            state.remind_lot_ms, state.remind_due_ms = expires_ms, None
    state.points_balance += points
    return ledger_effect(state, kind, points, at_ms, source_event_id, reward_id, claim_id)


def debit(state: CustomerState, points: int, at_ms: int, kind: str, source_event_id: str,
          reward_id: Optional[str] = None, claim_id: Optional[str] = None) -> LedgerEntryMade:
    """Take points from the oldest lots first; what the lots cannot cover becomes debt."""
    remaining = points
    lots = state.lots
    while remaining and lots:
        oldest = lots[0]
        taken = min(oldest.points, remaining)
        oldest.points -= taken
        remaining -= taken
        if oldest.points == 0:
            lots.pop(0)
    state.debt_points += remaining
    state.points_balance -= points
    if state.remind_lot_ms is not None and (not lots or lots[0].expires_at_ms >= state.remind_lot_ms):
        # Oldest first: only a debit that reached the date to remind of may leave it too few points.
        state.remind_due_ms = None
    return ledger_effect(state, kind, -points, at_ms, source_event_id, reward_id, claim_id)


def expire_lots(state: CustomerState, until_ms: int, source_event_id: Optional[str]) -> list[LedgerEntryMade]:
    """Remove every lot that expired at or before until_ms, one ledger entry each."""
    effects = []
    lots = state.lots
    while lots and lots[0].expires_at_ms <= until_ms:
        lot = lots.pop(0)
        state.points_balance -= lot.points
        effects.append(ledger_effect(state, "expire", -lot.points, lot.expires_at_ms, source_event_id))
    return effects


def points_expiring(state: CustomerState) -> list[dict]:
    """List the lots still held, oldest first, as {points, expires_at}."""
    return [{"points": lot.points, "expires_at": format_ms(lot.expires_at_ms)} for lot in state.lots]
