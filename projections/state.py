"""The per-customer projection: one value per customer, copied on write, never mutated once returned."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import orjson

# Order record fields (a list per order_id, compact in the store).
PAID_AT_MS, PAID_MINOR, REFUNDED_MINOR, EARNED_POINTS, REVERSED_POINTS, REVIEWED = range(6)


class Effect(NamedTuple):
    """Something the outside world must hear of: `kind` is ledger, update, campaign or notice."""
    kind: str
    record: dict


class CustomerState:
    """What the engine knows of one customer (all times are epoch milliseconds, money in minor units)."""

    __slots__ = (
        "customer_id", "birthday", "timezone", "first_seen_ms", "as_of_ms", "events_applied",
        "seen_event_ids", "lots", "debt_points", "points_balance", "ledger_seq", "orders",
        "redemption_ids", "daily_counts", "lifetime_spend_minor", "spend_12m_minor",
        "last_purchase_ms", "last_interaction_ms", "tier", "status", "last_win_back_ms",
        "birthday_done_year", "birthday_due_ms", "tier_due_ms", "next_due_ms",
        "orders_12m", "rfm", "value", "rfm_due_ms", "birthday_fired_year",
        # Rewards and care campaigns (docs/rules.md): coupons, expiry reminders, tier congratulations, member days.
        "claim_ids", "claims_per_year", "coupons", "coupon_due_ms", "remind_lot_ms", "remind_due_ms",
        "reminded_until_ms", "tier_left_ms", "member_day_due_ms",
    )

    def __init__(self, customer_id: str, first_seen_ms: int) -> None:
        self.customer_id = customer_id
        self.birthday: Optional[str] = None
        self.timezone: Optional[str] = None
        self.first_seen_ms = first_seen_ms
        self.as_of_ms = first_seen_ms
        self.events_applied = 0
        self.seen_event_ids: dict[str, int] = {}      # event_id -> occurred_at_ms, for dedupe
        self.lots: list[list[int]] = []               # [expires_at_ms, points], oldest first
        self.debt_points = 0                          # points owed after reversals past zero
        self.points_balance = 0                       # always sum(lots) - debt_points
        self.ledger_seq = 0                           # ledger entries written so far
        self.orders: dict[str, list[int]] = {}        # order_id -> see PAID_AT_MS..REVIEWED
        self.redemption_ids: dict[str, int] = {}      # redemption_id -> occurred_at_ms
        self.daily_counts: dict[str, int] = {}        # "checkin|2026-01-31" -> rewarded that local day
        self.lifetime_spend_minor = 0
        self.spend_12m_minor = 0
        self.last_purchase_ms: Optional[int] = None
        self.last_interaction_ms: Optional[int] = None
        self.tier = "standard"
        self.status = "potential"
        self.last_win_back_ms: Optional[int] = None
        self.birthday_done_year = 0                   # last year whose birthday fired or was missed
        self.birthday_due_ms: Optional[int] = None    # local midnight of the next unhandled birthday
        self.tier_due_ms: Optional[int] = None        # when the next order leaves the tier window
        self.next_due_ms: Optional[int] = None
        self.orders_12m = 0                           # orders in the tier window not fully refunded (F)
        self.rfm: Optional[list[int]] = None          # [r, f, m] scores 1..5; None without a purchase
        self.value = "none"                           # high, medium, low, or none without a purchase
        self.rfm_due_ms: Optional[int] = None         # when R next falls, or now after an order event; None: never
        self.birthday_fired_year = 0                  # last year a birthday campaign fired (0: never)
        self.claim_ids: dict[str, int] = {}           # claim_id -> occurred_at_ms, for dedupe
        self.claims_per_year: dict[str, int] = {}     # "reward_id|2026" -> claims accepted that local year
        self.coupons: dict[str, dict] = {}            # coupon_id -> see projections/rewards.py, open ones and
                                                      # closed ones still remembered
        self.coupon_due_ms: Optional[int] = None      # the earliest expiry of an open coupon
        self.remind_lot_ms: Optional[int] = None      # expiry of the lot whose local date is reminded next
        self.remind_due_ms: Optional[int] = None      # when that reminder is checked (None: to compute)
        self.reminded_until_ms = 0                    # lots expiring before this were checked for reminders
        self.tier_left_ms: dict[str, int] = {}        # congratulated tier -> when it was last left (0: held)
        self.member_day_due_ms: Optional[int] = None  # local midnight of the next member day not yet handled

    def clone(self) -> "CustomerState":
        """Return an independent copy (containers copied too), so the copy may be changed in place."""
        clone = CustomerState.__new__(CustomerState)
        for name in CustomerState.__slots__:
            setattr(clone, name, getattr(self, name))
        clone.seen_event_ids = dict(self.seen_event_ids)
        clone.lots = [lot[:] for lot in self.lots]
        clone.orders = {order_id: order[:] for order_id, order in self.orders.items()}
        clone.redemption_ids = dict(self.redemption_ids)
        clone.daily_counts = dict(self.daily_counts)
        clone.claim_ids = dict(self.claim_ids)
        clone.claims_per_year = dict(self.claims_per_year)
        clone.coupons = {coupon_id: dict(coupon) for coupon_id, coupon in self.coupons.items()}
        clone.tier_left_ms = dict(self.tier_left_ms)
        return clone

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data (the stored form)."""
        return {name: getattr(self, name) for name in CustomerState.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CustomerState":
        """Rebuild a state from its stored form."""
        if len(data) < len(cls.__slots__):
            return _upgraded(data)
        state = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(state, name, data[name])
        return state

    def to_bytes(self) -> bytes:
        """Serialise for a key-value store."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        """Deserialise from a key-value store."""
        return cls.from_dict(orjson.loads(raw))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerState) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"CustomerState({self.customer_id!r}, balance={self.points_balance}, tier={self.tier}, status={self.status})"


def _upgraded(data: dict[str, Any]) -> CustomerState:
    """Rebuild a state stored before some fields existed: they take their initial values."""
    state = CustomerState(data["customer_id"], data["first_seen_ms"])
    for name in CustomerState.__slots__:
        if name in data:
            setattr(state, name, data[name])
    if "orders_12m" not in data:
        # Stored before customer value: due at once, so the next clock recounts the tier window (spend and
        # orders, projections/timeline.py refresh_orders) and scores the customer.
        state.tier_due_ms = state.next_due_ms = state.as_of_ms
    return state
