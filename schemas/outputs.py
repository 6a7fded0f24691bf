"""Output records as sent to the output topics (docs/outputs.md)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

LedgerKind = Literal["earn", "bonus", "redeem", "reverse", "expire", "adjust", "coupon_refund"]


class OutputRecord(BaseModel):
    """Base of every output record: frozen, keyed by customer_id."""
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    customer_id: str


class LedgerEntry(OutputRecord):
    """One change of a customer's points (topic loyalty-ledger)."""
    entry_id: str
    occurred_at: str
    kind: LedgerKind
    points: int
    balance_after: int
    source_event_id: Optional[str]
    reward_id: Optional[str] = None   # only for a claim's redeem and a coupon_refund
    claim_id: Optional[str] = None


class CustomerUpdate(OutputRecord):
    """A tier, status or value class change, or a rejected redemption, claim or coupon use (topic customer-updates)."""
    kind: Literal["tier_changed", "status_changed", "redemption_rejected", "value_changed", "claim_rejected",
                  "coupon_rejected"]
    from_: Optional[str] = Field(default=None, alias="from")
    to: Optional[str] = None
    reason: Optional[str] = None
    redemption_id: Optional[str] = None
    points: Optional[int] = None
    claim_id: Optional[str] = None
    reward_id: Optional[str] = None
    coupon_id: Optional[str] = None
    order_id: Optional[str] = None
    at: str
    source_event_id: Optional[str]


class CampaignTrigger(OutputRecord):
    """A campaign to run for a customer (topic campaign-triggers)."""
    trigger_id: str
    campaign: Literal["win_back", "birthday", "points_expiring", "tier_upgraded", "member_day"]
    at: str
    tier: str
    status: str
    points_balance: int
    details: dict = {}


class CouponRecord(OutputRecord):
    """A coupon issued, used or expired (topic coupons); (kind, coupon_id) identifies it."""
    kind: Literal["coupon_issued", "coupon_used", "coupon_expired"]
    coupon_id: str
    reward_id: str
    at: str
    source_event_id: Optional[str]
    # coupon_issued
    claim_id: Optional[str] = None
    points: Optional[int] = None
    coupon_value: Optional[str] = None
    percent_off: Optional[int] = None
    min_order: Optional[str] = None
    expires_at: Optional[str] = None
    # coupon_used
    order_id: Optional[str] = None
    # coupon_expired
    points_refunded: Optional[int] = None


class DlqSource(BaseModel):
    topic: str
    partition: int
    offset: int


class DlqRecord(BaseModel):
    """A message that could not be applied, with its reason (topic customer-events-dlq)."""
    error: str
    reason: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    key: Optional[str]
    source: DlqSource
