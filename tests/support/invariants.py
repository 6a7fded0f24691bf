"""What every history keeps: valid output records, and a points balance equal to its ledger and to its lots."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

from projections.effects import (CampaignTriggered, CouponChanged, Effect, LedgerEntryMade, Output, RequestRefused,
                                 Transition)
from projections.state import CustomerState
from schemas.outputs import CampaignTrigger, CouponRecord, CustomerUpdate, LedgerEntry


def check_effect(effect: Effect) -> None:
    """Fail unless the effect record is a valid output record (docs/outputs.md) naming its policy version."""
    if not isinstance(effect, Output):
        return  # a notice: typed, counted only
    model = (LedgerEntry if isinstance(effect, LedgerEntryMade) else CampaignTrigger if isinstance(effect, CampaignTriggered)
             else CouponRecord if isinstance(effect, CouponChanged) else CustomerUpdate)
    record = model.model_validate(effect.record)
    assert effect.record.get("policy_version"), f"an output record without the policy version that made it: {effect}"
    # The typed fields the metrics read say what the record says.
    if isinstance(effect, LedgerEntryMade):
        assert (effect.kind, effect.points) == (record.kind, record.points), effect
    elif isinstance(effect, Transition):
        assert (effect.KIND, effect.was, effect.now) == (record.kind, record.from_, record.to), effect
    elif isinstance(effect, RequestRefused):
        assert (effect.kind, effect.reason) == (record.kind, record.reason), effect
    elif isinstance(effect, CampaignTriggered):
        assert (effect.campaign, effect.trigger_id) == (record.campaign, record.trigger_id), effect
    elif isinstance(effect, CouponChanged):
        assert effect.kind == record.kind, effect


def ledger_sums(entries: Iterable[dict]) -> dict[str, int]:
    """Sum the points of ledger entries per customer."""
    sums: dict[str, int] = defaultdict(int)
    for entry in entries:
        sums[entry["customer_id"]] += entry["points"]
    return dict(sums)


def check_running_balances(entries: Iterable[dict], sums: Optional[dict[str, int]] = None) -> dict[str, int]:
    """Fail unless each entry's balance_after is its customer's running sum (entries in log order); return the sums.

    Pass the sums returned before to go on checking a ledger entry by entry.
    """
    sums = {} if sums is None else sums
    for entry in entries:
        customer_id = entry["customer_id"]
        sums[customer_id] = sums.get(customer_id, 0) + entry["points"]
        assert entry["balance_after"] == sums[customer_id], entry
    return sums


def check_points(state: CustomerState, ledger_sum: int) -> None:
    """Balance == sum of the customer's ledger == lots - debt; no debt while lots are held; lots positive, by expiry."""
    lots = state.to_dict()["lots"]  # as stored: [expires_at_ms, points] pairs, oldest first
    assert state.points_balance == ledger_sum == sum(points for _, points in lots) - state.debt_points, state
    assert state.debt_points >= 0 and not (state.debt_points > 0 and lots), state
    assert all(points > 0 for _, points in lots), state
    assert [expires for expires, _ in lots] == sorted({expires for expires, _ in lots}), state
    check_checkout(state)


def check_checkout(state: CustomerState) -> None:
    """Held = sum of open holds, pending = sum of pending points (positive, by release), history = the last entries."""
    assert state.held_points == sum(h.points for h in state.holds.values()), state
    assert all(h.points > 0 for h in state.holds.values()), state
    assert state.hold_due_ms == min((h.expires_at_ms for h in state.holds.values()), default=None), state
    releases = [p.release_at_ms for p in state.pending]
    assert state.pending_points == sum(p.points for p in state.pending) and releases == sorted(releases), state
    assert all(p.points > 0 for p in state.pending), state
    seqs = [entry[0] for entry in state.history]
    assert seqs == list(range(state.ledger_seq - len(seqs) + 1, state.ledger_seq + 1)), state
    assert not seqs or state.history[-1][4] == state.points_balance, state
