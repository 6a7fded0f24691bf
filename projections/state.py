"""The per-customer projection and the records it holds (lots, orders, coupons, holds), all changed in place.

`evolve` hands the rules a clone, the partition fold the state it owns. Stored (RocksDB, changelog) as
positional msgpack (to_bytes, from_bytes); states stored as JSON by earlier versions still load, and
to_dict is the JSON form (exports, explain, equality).
"""
from __future__ import annotations

import zlib
from operator import attrgetter
from typing import Any, Optional

import msgspec
import orjson
from msgspec.structs import replace

OPEN, USED, EXPIRED = "open", "used", "expired"  # the states of a coupon


class Lot(msgspec.Struct, array_like=True, gc=False):
    """Points credited that expire together (stored as [expires_at_ms, points])."""
    expires_at_ms: int
    points: int


LOT_EXPIRY = attrgetter("expires_at_ms")  # the key a state's lots are sorted (and bisected) by


class Order(msgspec.Struct, array_like=True, gc=False):
    """A paid order as the rules need it (stored as an array of these fields in order; as JSON, reviewed was 0 or 1)."""
    paid_at_ms: int
    paid_minor: int
    refunded_minor: int    # refunded so far, at most paid_minor
    earned_points: int     # earned when paid
    reversed_points: int   # taken back by refunds so far
    reviewed: bool         # a review of it was rewarded


class Rfm(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """The recency, frequency and monetary scores, each 1..5 (stored as [r, f, m])."""
    r: int
    f: int
    m: int


class Coupon(msgspec.Struct, array_like=True, gc=False):
    """A coupon bought with points, open or closed but still remembered (stored as an array of its fields)."""
    reward_id: str
    claim_id: str
    points: int                          # what it cost
    issued_at_ms: int
    expires_at_ms: int
    coupon_value_minor: Optional[int]
    percent_off: Optional[int]
    min_order_minor: Optional[int]
    refund: bool                         # its points come back if it expires unused
    state: str = OPEN                    # OPEN, USED or EXPIRED
    closed_at_ms: Optional[int] = None   # when used or expired
    order_id: Optional[str] = None       # the order it was used on


class Hold(msgspec.Struct, array_like=True, gc=False):
    """Points reserved at a checkout until captured, released or expired (stored as an array of these fields)."""
    points: int
    placed_at_ms: int
    expires_at_ms: int


class Pending(msgspec.Struct, array_like=True, gc=False):
    """Points an order earned that are not spendable before release_at_ms (stored as an array of these fields)."""
    release_at_ms: int
    points: int
    order_id: str


class CustomerState:
    """What the engine knows of one customer (all times are epoch milliseconds, money in minor units)."""

    __slots__ = (
        "customer_id", "birthday", "timezone", "first_seen_ms", "as_of_ms", "events_applied",
        "seen_event_ids", "lots", "debt_points", "points_balance", "ledger_seq", "orders",
        "redemption_ids", "daily_counts", "lifetime_spend_minor", "window_spend_minor",
        "last_purchase_ms", "last_interaction_ms", "tier", "status", "last_win_back_ms",
        "birthday_done_year", "birthday_due_ms", "tier_due_ms", "next_due_ms",
        "window_orders", "rfm", "value", "rfm_due_ms", "birthday_fired_year",
        # Rewards and care campaigns (docs/rules.md): coupons, expiry reminders, tier congratulations, member days.
        "claim_ids", "claims_per_year", "coupons", "coupon_due_ms", "remind_lot_ms", "remind_due_ms",
        "reminded_until_ms", "tier_left_ms", "member_day_due_ms",
        # Where the customer's state stands in the input log (see PartitionFold.apply).
        "input_offset",
        # Checkout (docs/rules.md): open holds, pending points, the last ledger entries, command outcomes.
        "holds", "held_points", "hold_due_ms", "pending", "pending_points", "history", "commands",
    )

    def __init__(self, customer_id: str, first_seen_ms: int) -> None:
        self.customer_id = customer_id
        self.birthday: Optional[str] = None
        self.timezone: Optional[str] = None
        self.first_seen_ms = first_seen_ms
        self.as_of_ms = first_seen_ms
        self.events_applied = 0
        self.seen_event_ids: dict[str, int] = {}      # event_id -> occurred_at_ms, for dedupe
        self.lots: list[Lot] = []                     # by expiry, oldest first, one per expiry time
        self.debt_points = 0                          # points owed after reversals past zero
        self.points_balance = 0                       # always sum(lots) - debt_points
        self.ledger_seq = 0                           # ledger entries written so far
        self.orders: dict[str, Order] = {}            # order_id -> the order, in arrival order
        self.redemption_ids: dict[str, int] = {}      # redemption_id -> occurred_at_ms
        self.daily_counts: dict[tuple[str, str], int] = {}  # ("checkin", "2026-01-31") -> rewarded that local day
        self.lifetime_spend_minor = 0
        self.window_spend_minor = 0                   # net spend of the orders in the tier window (policy window_days)
        self.last_purchase_ms: Optional[int] = None
        self.last_interaction_ms: Optional[int] = None
        self.tier = "standard"
        self.status = "potential"
        self.last_win_back_ms: Optional[int] = None
        self.birthday_done_year = 0                   # last year whose birthday fired or was missed
        self.birthday_due_ms: Optional[int] = None    # local midnight of the next unhandled birthday
        self.tier_due_ms: Optional[int] = None        # when the next order leaves the tier window
        self.next_due_ms: Optional[int] = None
        self.window_orders = 0                        # orders in the tier window not fully refunded (F)
        self.rfm: Optional[Rfm] = None                # None without a purchase
        self.value = "none"                           # high, medium, low, or none without a purchase
        self.rfm_due_ms: Optional[int] = None         # when R next falls, or now after an order event; None: never
        self.birthday_fired_year = 0                  # last year a birthday campaign fired (0: never)
        self.claim_ids: dict[str, int] = {}           # claim_id -> occurred_at_ms, for dedupe
        self.claims_per_year: dict[tuple[str, int], int] = {}  # (reward_id, 2026) -> claims accepted that local year
        self.coupons: dict[str, Coupon] = {}          # coupon_id -> open coupons and closed ones still remembered
        self.coupon_due_ms: Optional[int] = None      # the earliest expiry of an open coupon
        self.remind_lot_ms: Optional[int] = None      # expiry of the lot whose local date is reminded next
        self.remind_due_ms: Optional[int] = None      # when that reminder is checked (None: to compute)
        self.reminded_until_ms = 0                    # lots expiring before this were checked for reminders
        self.tier_left_ms: dict[str, int] = {}        # congratulated tier -> when it was last left (0: held)
        self.member_day_due_ms: Optional[int] = None  # local midnight of the next member day not yet handled
        self.input_offset: Optional[int] = None       # input offset of the last record of this customer folded in
        self.holds: dict[str, Hold] = {}              # hold_id -> open holds only
        self.held_points = 0                          # always the sum of the open holds' points
        self.hold_due_ms: Optional[int] = None        # the earliest expiry of an open hold
        self.pending: list[Pending] = []              # by release time, earliest first
        self.pending_points = 0                       # always the sum of pending points
        self.history: list[list] = []                 # the last ledger entries: [seq, at_ms, kind, points, balance_after]
        self.commands: dict[str, list] = {}           # "redeem:ID" etc. -> [at_ms, request, outcome, detail], for answers

    def clone(self) -> "CustomerState":
        """Return an independent copy (containers and records copied too), so the copy may be changed in place."""
        clone = CustomerState.__new__(CustomerState)
        for name in CustomerState.__slots__:
            setattr(clone, name, getattr(self, name))
        clone.seen_event_ids = dict(self.seen_event_ids)
        clone.lots = [Lot(lot.expires_at_ms, lot.points) for lot in self.lots]
        clone.orders = {order_id: replace(order) for order_id, order in self.orders.items()}
        clone.redemption_ids = dict(self.redemption_ids)
        clone.daily_counts = dict(self.daily_counts)
        clone.claim_ids = dict(self.claim_ids)
        clone.claims_per_year = dict(self.claims_per_year)
        clone.coupons = {coupon_id: replace(coupon) for coupon_id, coupon in self.coupons.items()}
        clone.tier_left_ms = dict(self.tier_left_ms)
        clone.holds = {hold_id: replace(hold) for hold_id, hold in self.holds.items()}
        clone.pending = [replace(entry) for entry in self.pending]
        clone.history = list(self.history)      # its entries are never changed in place
        clone.commands = dict(self.commands)    # nor are these
        return clone

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data: the stored form, unchanged since before the typed records.

        One dict display in __slots__ order (the stored keys' order; a test compares them): faster than
        building it from the slots' names, and every changed state is encoded once a batch.
        """
        return {
            "customer_id": self.customer_id, "birthday": self.birthday, "timezone": self.timezone,
            "first_seen_ms": self.first_seen_ms, "as_of_ms": self.as_of_ms, "events_applied": self.events_applied,
            "seen_event_ids": self.seen_event_ids,
            "lots": [[lot.expires_at_ms, lot.points] for lot in self.lots],
            "debt_points": self.debt_points, "points_balance": self.points_balance, "ledger_seq": self.ledger_seq,
            "orders": {order_id: [o.paid_at_ms, o.paid_minor, o.refunded_minor, o.earned_points, o.reversed_points,
                                  1 if o.reviewed else 0] for order_id, o in self.orders.items()},
            "redemption_ids": self.redemption_ids, "daily_counts": _joined(self.daily_counts),
            "lifetime_spend_minor": self.lifetime_spend_minor, "spend_12m_minor": self.window_spend_minor,
            "last_purchase_ms": self.last_purchase_ms, "last_interaction_ms": self.last_interaction_ms,
            "tier": self.tier, "status": self.status, "last_win_back_ms": self.last_win_back_ms,
            "birthday_done_year": self.birthday_done_year, "birthday_due_ms": self.birthday_due_ms,
            "tier_due_ms": self.tier_due_ms, "next_due_ms": self.next_due_ms, "orders_12m": self.window_orders,
            "rfm": None if self.rfm is None else [self.rfm.r, self.rfm.f, self.rfm.m], "value": self.value, "rfm_due_ms": self.rfm_due_ms,
            "birthday_fired_year": self.birthday_fired_year,
            "claim_ids": self.claim_ids, "claims_per_year": _joined(self.claims_per_year),
            "coupons": {coupon_id: _coupon_doc(c) for coupon_id, c in self.coupons.items()},
            "coupon_due_ms": self.coupon_due_ms, "remind_lot_ms": self.remind_lot_ms,
            "remind_due_ms": self.remind_due_ms, "reminded_until_ms": self.reminded_until_ms,
            "tier_left_ms": self.tier_left_ms, "member_day_due_ms": self.member_day_due_ms,
            "input_offset": self.input_offset,
            "holds": {hold_id: [h.points, h.placed_at_ms, h.expires_at_ms] for hold_id, h in self.holds.items()},
            "held_points": self.held_points, "hold_due_ms": self.hold_due_ms,
            "pending": [[p.release_at_ms, p.points, p.order_id] for p in self.pending],
            "pending_points": self.pending_points, "history": self.history, "commands": self.commands,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CustomerState":
        """Rebuild a state from its stored form."""
        if len(data) < len(_STORED):
            return _upgraded(data)
        state = cls.__new__(cls)
        for key, name in _STORED:
            setattr(state, name, data[key])
        _load_records(state, data)
        return state

    def to_bytes(self) -> bytes:
        """Serialise for a key-value store: [FORMAT, every slot in order] as msgpack, compressed if large."""
        raw = _encode([FORMAT, *_slot_values(self)])  # the counts' tuple keys as msgpack arrays
        return raw if len(raw) <= COMPRESS_ABOVE else zlib.compress(raw, 1)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        """Deserialise from a key-value store, in the format its first byte shows."""
        first = raw[:1]
        if first == b"{":  # a JSON object: stored before FORMAT 1
            return cls.from_dict(orjson.loads(raw))
        if first == _ZLIB:
            raw = zlib.decompress(raw)
        values = _decode(raw)
        if values[0] not in _READ_FORMATS:
            raise ValueError(f"customer state in unknown format {values[0]!r}")
        state = cls.__new__(cls)
        for name, value in zip(cls.__slots__, values[1:]):
            setattr(state, name, value)
        if values[0] == 1:
            _split_keys(state)
        return state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerState) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"CustomerState({self.customer_id!r}, balance={self.points_balance}, tier={self.tier}, "
                f"status={self.status})")


# Attributes stored under another key: named when the tier window was always 12 months, and users'
# stores and changelogs hold these keys.
_STORED_KEY = {"window_spend_minor": "spend_12m_minor", "window_orders": "orders_12m"}
_STORED = tuple((_STORED_KEY.get(name, name), name) for name in CustomerState.__slots__)  # (key, attribute), in order


# The stored form since FORMAT 1: a msgpack array of FORMAT and the slots in __slots__ order, the records
# positional (their fields in order). A msgpack array never starts with "{", the first byte of every
# state stored as JSON before it. A new slot goes last, with a new FORMAT. FORMAT 2 stores the keys of the
# daily and yearly counts as arrays, which msgpack reads back as the tuples the rules use; FORMAT 1 joined
# them with "|" (joined at every encode, split at every decode) and is still read.
FORMAT = 2
_READ_FORMATS = (1, FORMAT)
# A very active customer's state holds a year of lots and orders (tens of KB of near-repeating numbers):
# above this many bytes it is stored zlib-compressed (level 1: the fastest, for a rare large state).
COMPRESS_ABOVE = 4096
_ZLIB = b"\x78"  # the first byte of every zlib stream (deflate, 32 KB window): neither "{" nor a msgpack array
_RECORD_TYPES = {"lots": list[Lot], "orders": dict[str, Order], "coupons": dict[str, Coupon],
                 "holds": dict[str, Hold], "pending": list[Pending], "rfm": Optional[Rfm]}
_slot_values = attrgetter(*CustomerState.__slots__)
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(
    tuple[(int, *(_RECORD_TYPES.get(name, Any) for name in CustomerState.__slots__))]).decode


def _coupon_doc(coupon: Coupon) -> dict[str, Any]:
    """Return a coupon's stored form (its fields in order)."""
    return {"reward_id": coupon.reward_id, "claim_id": coupon.claim_id, "points": coupon.points,
            "issued_at_ms": coupon.issued_at_ms, "expires_at_ms": coupon.expires_at_ms,
            "coupon_value_minor": coupon.coupon_value_minor, "percent_off": coupon.percent_off,
            "min_order_minor": coupon.min_order_minor, "refund": coupon.refund, "state": coupon.state,
            "closed_at_ms": coupon.closed_at_ms, "order_id": coupon.order_id}


def _load_records(state: CustomerState, data: dict[str, Any]) -> None:
    """Turn the stored lists and dicts of lots, orders and coupons into their records."""
    state.lots = [Lot(expires_at_ms, points) for expires_at_ms, points in data.get("lots", ())]
    state.orders = {order_id: Order(paid_at, paid, refunded, earned, reversed_, reviewed == 1)
                    for order_id, (paid_at, paid, refunded, earned, reversed_, reviewed)
                    in data.get("orders", {}).items()}
    state.coupons = {coupon_id: Coupon(**doc) for coupon_id, doc in data.get("coupons", {}).items()}
    state.holds = {hold_id: Hold(*fields) for hold_id, fields in data.get("holds", {}).items()}
    state.pending = [Pending(*fields) for fields in data.get("pending", ())]
    rfm = data.get("rfm")
    state.rfm = None if rfm is None else Rfm(*rfm)
    _split_keys(state)


def _joined(counts: dict[tuple, int]) -> dict[str, int]:
    """Return counts by a two-part key in their stored form: the parts joined by "|" ("checkin|2026-01-31")."""
    return {f"{first}|{second}": count for (first, second), count in counts.items()}


def _split_keys(state: CustomerState) -> None:
    """Turn the stored "|"-joined keys of the daily and yearly counts into their tuples (a day or a year last)."""
    if state.daily_counts:
        state.daily_counts = {tuple(key.split("|", 1)): count for key, count in state.daily_counts.items()}
    if state.claims_per_year:
        years = {}
        for key, count in state.claims_per_year.items():
            reward_id, year = key.rsplit("|", 1)  # a reward id may hold "|", a year never does
            years[reward_id, int(year)] = count
        state.claims_per_year = years


def _upgraded(data: dict[str, Any]) -> CustomerState:
    """Rebuild a state stored before some fields existed: they take their initial values."""
    state = CustomerState(data["customer_id"], data["first_seen_ms"])
    for key, name in _STORED:
        if key in data:
            setattr(state, name, data[key])
    _load_records(state, data)
    if "orders_12m" not in data:
        # Stored before customer value: due at once, so the next clock recounts the tier window (spend and
        # orders, projections/timeline.py refresh_orders) and scores the customer.
        state.tier_due_ms = state.next_due_ms = state.as_of_ms
    return state
