"""Checkout: holds (placed, captured, released, expired), pending points, and the outcome of each command."""
from __future__ import annotations

from bisect import insort
from typing import Optional

from projections.effects import CheckoutUpdated, Effect, LedgerEntryMade
from projections.points import debit
from projections.state import CustomerState, Hold, Pending
from schemas.events import EventBase, HoldCaptured, HoldReleased, HoldRequested, OrderPaid
from schemas.outputs import hold_update, points_released
from schemas.policy import Policy
from schemas.timeutil import DAY_MS, format_ms

ACCEPTED, REJECTED = "accepted", "rejected"
PENDING_KEY = lambda entry: entry.release_at_ms  # noqa: E731 (the sort key of state.pending)


def available_points(state: CustomerState) -> int:
    """Return the spendable points: the balance less open holds and pending points."""
    return state.points_balance - state.held_points - state.pending_points


def known_command(state: CustomerState, key: str, policy: Policy) -> Optional[list]:
    """Return a command's remembered outcome while its id is remembered (clock < its time + redemption_id_days)."""
    outcome = state.commands.get(key)
    if outcome is None or state.as_of_ms >= outcome[0] + policy.retention.redemption_id_days * DAY_MS:
        return None
    return outcome


def remember_outcome(state: CustomerState, key: str, at_ms: int, request: list, outcome: str, detail: dict) -> None:
    """Keep what a command decided, so that asking again (HTTP, after any restart) gets the same answer."""
    state.commands[key] = [at_ms, request, outcome, detail]


def ledger_detail(entry: LedgerEntryMade) -> dict:
    """Return what an answer says of an accepted command's ledger entry."""
    return {"entry_id": entry.record["entry_id"], "points": entry.record["points"],
            "balance_after": entry.record["balance_after"]}


def _hold_refused(state: CustomerState, kind: str, hold_id: str, points: int, at_ms: int, event_id: str,
                  key: str, request: list, reason: str) -> list[Effect]:
    """Remember and report a refused hold command."""
    remember_outcome(state, key, at_ms, request, REJECTED, {"reason": reason})
    return [CheckoutUpdated(hold_update(customer_id=state.customer_id, kind=kind, hold_id=hold_id, points=points,
                                         reason=reason, at=format_ms(at_ms), source_event_id=event_id))]


def place_hold(state: CustomerState, event: HoldRequested, policy: Policy) -> list[Effect]:
    """Reserve points when the spendable points cover them, else refuse; a repeated hold_id changes nothing."""
    payload, at_ms = event.payload, event.occurred_at_ms
    key = f"hold:{payload.hold_id}"
    if known_command(state, key, policy) is not None:
        return []
    request = [payload.points, payload.expires_in_s]
    if payload.points > available_points(state):
        return _hold_refused(state, "hold_rejected", payload.hold_id, payload.points, at_ms, event.event_id, key,
                             request, "insufficient_points")
    expires_ms = at_ms + payload.expires_in_s * 1000
    state.holds[payload.hold_id] = Hold(payload.points, at_ms, expires_ms)
    state.held_points += payload.points
    if state.hold_due_ms is None or expires_ms < state.hold_due_ms:
        state.hold_due_ms = expires_ms
    remember_outcome(state, key, at_ms, request, ACCEPTED, {"points": payload.points,
                                                           "expires_at": format_ms(expires_ms)})
    return [CheckoutUpdated(hold_update(
        customer_id=state.customer_id, kind="hold_placed", hold_id=payload.hold_id, points=payload.points,
        expires_at=format_ms(expires_ms), at=format_ms(at_ms), source_event_id=event.event_id))]


def _closed_reason(state: CustomerState, hold_id: str, policy: Policy) -> str:
    """Say why a hold is not open: it was placed and has closed since, or it is unknown (never placed, refused)."""
    placed = known_command(state, f"hold:{hold_id}", policy)
    return "hold_closed" if placed is not None and placed[2] == ACCEPTED else "unknown_hold"


def _close_hold(state: CustomerState, hold_id: str) -> Hold:
    """Remove an open hold and give its points back to the spendable ones."""
    hold = state.holds.pop(hold_id)
    state.held_points -= hold.points
    if hold.expires_at_ms == state.hold_due_ms:
        state.hold_due_ms = min((h.expires_at_ms for h in state.holds.values()), default=None)
    return hold


def capture_hold(state: CustomerState, event: HoldCaptured, policy: Policy) -> list[Effect]:
    """Redeem all or part of an open hold (the rest is released); refuse it if the balance no longer covers it."""
    return _capture(state, event.payload.hold_id, event.payload.points, event, policy, {})


def capture_for_order(state: CustomerState, event: OrderPaid, policy: Policy) -> list[Effect]:
    """Capture the whole hold an order names: its points become the order's redemption."""
    return _capture(state, event.payload.hold_id, None, event, policy, {"order_id": event.payload.order_id})


def _capture(state: CustomerState, hold_id: str, wanted: Optional[int], event: EventBase, policy: Policy,
             about: dict) -> list[Effect]:
    """Capture `wanted` points of a hold (None: all of them), remembered under the hold's capture key."""
    at_ms = event.occurred_at_ms
    key = f"capture:{hold_id}"
    if known_command(state, key, policy) is not None:
        return []
    request = [wanted]
    hold = state.holds.get(hold_id)
    points = wanted if wanted is not None else (hold.points if hold is not None else 0)
    if hold is None:
        reason = _closed_reason(state, hold_id, policy)
    elif points > hold.points:
        reason = "exceeds_hold"
    # Lots may have expired or been reversed since the hold was placed: a capture never overspends.
    elif points > available_points(state) + hold.points:
        reason = "insufficient_points"
    else:
        reason = None
    if reason is not None:
        return _hold_refused(state, "capture_rejected", hold_id, points, at_ms, event.event_id, key, request, reason)
    _close_hold(state, hold_id)
    entry = debit(state, points, at_ms, "redeem", event.event_id)
    remember_outcome(state, key, at_ms, request, ACCEPTED,
                     {**ledger_detail(entry), "released": hold.points - points, **about})
    return [entry, CheckoutUpdated(hold_update(
        customer_id=state.customer_id, kind="hold_captured", hold_id=hold_id, points=points,
        released=hold.points - points, at=format_ms(at_ms), source_event_id=event.event_id, **about))]


def release_hold(state: CustomerState, event: HoldReleased, policy: Policy) -> list[Effect]:
    """Give an open hold's points back; refuse to release a hold that is not open."""
    payload, at_ms = event.payload, event.occurred_at_ms
    key = f"release:{payload.hold_id}"
    if known_command(state, key, policy) is not None:
        return []
    hold = state.holds.get(payload.hold_id)
    if hold is None:
        return _hold_refused(state, "release_rejected", payload.hold_id, 0, at_ms, event.event_id, key, [],
                             _closed_reason(state, payload.hold_id, policy))
    _close_hold(state, payload.hold_id)
    remember_outcome(state, key, at_ms, [], ACCEPTED, {"points": hold.points})
    return [CheckoutUpdated(hold_update(customer_id=state.customer_id, kind="hold_released", hold_id=payload.hold_id,
                                         points=hold.points, at=format_ms(at_ms), source_event_id=event.event_id))]


def expire_holds(state: CustomerState, until_ms: int, source_event_id: Optional[str]) -> list[Effect]:
    """Release every open hold whose expiry is at or before until_ms (a time rule), earliest first."""
    due = sorted((h.expires_at_ms, hold_id) for hold_id, h in state.holds.items() if h.expires_at_ms <= until_ms)
    effects = []
    for expires_ms, hold_id in due:
        hold = _close_hold(state, hold_id)
        effects.append(CheckoutUpdated(hold_update(
            customer_id=state.customer_id, kind="hold_expired", hold_id=hold_id, points=hold.points,
            at=format_ms(expires_ms), source_event_id=source_event_id)))
    return effects


def add_pending(state: CustomerState, order_id: str, points: int, earned_ms: int, policy: Policy) -> None:
    """Lock an order's earned points until pending_days after the order (the return window)."""
    entry = Pending(earned_ms + policy.earn.pending_days * DAY_MS, points, order_id)
    if not state.pending or state.pending[-1].release_at_ms <= entry.release_at_ms:
        state.pending.append(entry)
    else:
        insort(state.pending, entry, key=PENDING_KEY)
    state.pending_points += points


def take_back_pending(state: CustomerState, order_id: str, points: int) -> None:
    """Let a refund's reversal take an order's points while still pending (they never become spendable)."""
    for entry in state.pending:
        if entry.order_id == order_id:
            taken = min(entry.points, points)
            entry.points -= taken
            state.pending_points -= taken
            if not entry.points:
                state.pending.remove(entry)
            return


def release_pending(state: CustomerState, until_ms: int, source_event_id: Optional[str]) -> list[Effect]:
    """Make the pending points whose release time is at or before until_ms spendable (a time rule)."""
    effects = []
    pending = state.pending
    while pending and pending[0].release_at_ms <= until_ms:
        entry = pending.pop(0)
        state.pending_points -= entry.points
        effects.append(CheckoutUpdated(points_released(
            customer_id=state.customer_id, order_id=entry.order_id, points=entry.points,
            at=format_ms(entry.release_at_ms), source_event_id=source_event_id)))
    return effects


def open_holds(state: CustomerState) -> list[dict]:
    """List the open holds, soonest expiry first, as the customer JSON shows them."""
    return [{"hold_id": hold_id, "points": h.points, "placed_at": format_ms(h.placed_at_ms),
             "expires_at": format_ms(h.expires_at_ms)}
            for hold_id, h in sorted(state.holds.items(), key=lambda item: (item[1].expires_at_ms, item[0]))]


def pending_points(state: CustomerState) -> list[dict]:
    """List the pending points, earliest first, with the time each becomes spendable."""
    return [{"points": p.points, "available_at": format_ms(p.release_at_ms), "order_id": p.order_id}
            for p in state.pending]


def prune_commands(state: CustomerState, policy: Policy) -> None:
    """Forget command outcomes past redemption_id_days (no outcome depends on them any more)."""
    since_ms = state.as_of_ms - policy.retention.redemption_id_days * DAY_MS
    commands = state.commands
    if commands and min(outcome[0] for outcome in commands.values()) < since_ms:
        state.commands = {key: outcome for key, outcome in commands.items() if outcome[0] >= since_ms}
