"""The documents the query tools and HTTP views show of the projections (docs/outputs.md), and the totals."""
from __future__ import annotations

from typing import Iterable, Optional

from msgspec.structs import asdict

from projections.checkout import available_points, open_holds, pending_points
from projections.points import points_expiring
from projections.rewards import open_coupons
from projections.state import CustomerState
from schemas.policy import STATUSES, TIERS, VALUES
from schemas.timeutil import format_ms


def money(minor: int) -> str:
    """Format minor units as a decimal string with 2 places, e.g. 123456 -> '1234.56'."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def _time(ms: Optional[int]) -> Optional[str]:
    return None if ms is None else format_ms(ms)


def customer_view(state: CustomerState) -> dict:
    """Return one customer's projection as the contract's JSON."""
    return {
        "customer_id": state.customer_id,
        "points_balance": state.points_balance,
        "points_available": available_points(state),   # balance - held - pending: what a checkout may spend
        "points_held": state.held_points,
        "points_pending": state.pending_points,
        "tier": state.tier,
        "status": state.status,
        "spend_12m": money(state.window_spend_minor),
        "lifetime_spend": money(state.lifetime_spend_minor),
        "last_purchase_at": _time(state.last_purchase_ms),
        "last_interaction_at": _time(state.last_interaction_ms),
        "birthday": state.birthday,
        "timezone": state.timezone,
        "points_expiring": points_expiring(state),
        "coupons": open_coupons(state),
        "holds": open_holds(state),
        "pending": pending_points(state),
        "events_applied": state.events_applied,
        "as_of": format_ms(state.as_of_ms),
        "rfm": None if state.rfm is None else asdict(state.rfm),
        "value": state.value,
    }


def ledger_page(state: CustomerState, limit: int, cursor: Optional[int] = None) -> dict:
    """Return a member's ledger entries newest first, those before `cursor` (an entry's sequence number) if given."""
    entries = [e for e in reversed(state.history) if cursor is None or e[0] < cursor][:limit]
    more = bool(entries) and entries[-1][0] > state.history[0][0]
    return {"customer_id": state.customer_id, "entries": [
        {"entry_id": f"{state.customer_id}:{seq}", "occurred_at": format_ms(at_ms), "kind": kind, "points": points,
         "balance_after": balance_after} for seq, at_ms, kind, points, balance_after in entries],
        "next_cursor": str(entries[-1][0]) if more else None}


# A segment member as a CRM import wants it: `loyalty query segment --format csv` writes these columns.
MEMBER_FIELDS = ("customer_id", "tier", "status", "value", "points_balance", "last_purchase_at")


def member_row(state: CustomerState) -> dict:
    """Return a segment member's row: id, tier, status, value class, points balance, last purchase."""
    return {"customer_id": state.customer_id, "tier": state.tier, "status": state.status, "value": state.value,
            "points_balance": state.points_balance, "last_purchase_at": _time(state.last_purchase_ms)}


class Totals:
    """Counts by status, tier and value class, points outstanding and events applied, kept up to date incrementally."""

    def __init__(self) -> None:
        self.customers = 0
        self.by_status = dict.fromkeys(STATUSES, 0)
        self.by_tier = dict.fromkeys(TIERS, 0)
        self.by_value = dict.fromkeys(VALUES, 0)
        self.points_outstanding = 0
        self.events_applied = 0

    def add(self, state: CustomerState, sign: int = 1) -> None:
        """Count a state in (sign 1) or out (sign -1)."""
        self.add_values(state.status, state.tier, state.points_balance, state.events_applied, sign=sign,
                        value=state.value)

    def add_values(self, status: str, tier: str, points: int, events: int, sign: int = 1, *, value: str) -> None:
        """Count one customer's status, tier, value class, points and events in (sign 1) or out (sign -1)."""
        self.customers += sign
        self.by_status[status] += sign
        self.by_tier[tier] += sign
        self.by_value[value] += sign
        self.points_outstanding += sign * points
        self.events_applied += sign * events

    def merge(self, other: "Totals") -> None:
        """Add another partition's totals into these."""
        self.customers += other.customers
        for status, count in other.by_status.items():
            self.by_status[status] += count
        for tier, count in other.by_tier.items():
            self.by_tier[tier] += count
        for value, count in other.by_value.items():
            self.by_value[value] += count
        self.points_outstanding += other.points_outstanding
        self.events_applied += other.events_applied

    def to_dict(self) -> dict:
        """Return the contract's stats JSON."""
        return {"customers": self.customers, "by_status": dict(self.by_status), "by_tier": dict(self.by_tier),
                "by_value": dict(self.by_value), "points_outstanding": self.points_outstanding, "events_applied": self.events_applied}

    @classmethod
    def from_dict(cls, data: dict) -> "Totals":
        """Rebuild totals from their JSON."""
        totals = cls()
        totals.customers, totals.points_outstanding = data["customers"], data["points_outstanding"]
        totals.by_status, totals.by_tier = dict(data["by_status"]), dict(data["by_tier"])
        if "by_value" in data:  # a peer of an earlier version sends none
            totals.by_value = dict(data["by_value"])
        totals.events_applied = data["events_applied"]
        return totals

    @classmethod
    def of(cls, states: Iterable[CustomerState]) -> "Totals":
        """Count a collection of states."""
        totals = cls()
        for state in states:
            totals.add(state)
        return totals
