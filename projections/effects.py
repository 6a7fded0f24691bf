"""What a fold tells the outside world: output records by type, notices for the metrics, and outcomes."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Optional, Union


class Outcome(Enum):
    """What became of one input record; the values are the metrics' outcome labels."""
    APPLIED = "applied"
    DUPLICATE = "duplicate"        # its event id (or order, redemption, claim id) was seen: nothing changed
    REDELIVERED = "redelivered"    # the customer's saved state already holds this input offset
    TICK = "tick"                  # a clock record: it moved the partition clock only
    POLICY = "policy"              # a policy.changed record: scheduled for its effective time
    REJECTED = "rejected"          # refused by validation, or isolated because its fold raised


@dataclass(slots=True)
class Output:
    """A record of schemas/outputs.py to publish, as its builder made it (serialised as is)."""
    record: dict


@dataclass(slots=True)
class LedgerEntryMade(Output):
    """An entry of loyalty-ledger; kind and points as in the record."""
    kind: str
    points: int


@dataclass(slots=True)
class Transition(Output):
    """A customer-updates record of a move from one class to another (KIND: the record's kind)."""
    was: str
    now: str
    KIND: ClassVar[str] = ""


class StatusChanged(Transition):
    """The activity status changed (active, potential, dormant)."""
    __slots__ = ()
    KIND = "status_changed"


class TierChanged(Transition):
    """The tier changed (standard, premium, vip)."""
    __slots__ = ()
    KIND = "tier_changed"


class ValueChanged(Transition):
    """The value class changed (high, medium, low, none)."""
    __slots__ = ()
    KIND = "value_changed"


@dataclass(slots=True)
class RequestRefused(Output):
    """A customer-updates record refusing a redemption, a claim or a coupon use, with its reason."""
    kind: str
    reason: str


@dataclass(slots=True)
class CheckoutUpdated(Output):
    """A customer-updates record of a hold or of pending points released."""


@dataclass(slots=True)
class CampaignTriggered(Output):
    """A campaign-triggers record."""
    campaign: str
    trigger_id: str


@dataclass(slots=True)
class CouponChanged(Output):
    """A coupons record: a coupon issued, used or expired (its kind)."""
    kind: str


@dataclass(slots=True, frozen=True)
class BecameDormant:
    """A customer became dormant, with the tier and value class held just before (counted, never sent)."""
    tier: str
    value: str
    source_event_id: Optional[str]


@dataclass(slots=True, frozen=True)
class RefundOfUnknownOrder:
    """A refund named an order the state does not hold (counted, never sent)."""
    source_event_id: str


Notice = Union[BecameDormant, RefundOfUnknownOrder]
Effect = Union[Output, BecameDormant, RefundOfUnknownOrder]


def stamped(effects: list[Effect], policy_version: str) -> list[Effect]:
    """Name in each output record the version of the policy that made it (one string per partition, no hashing)."""
    for effect in effects:
        if isinstance(effect, Output):
            effect.record["policy_version"] = policy_version
    return effects
