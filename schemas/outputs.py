"""Output records as sent to the output topics (docs/outputs.md)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

LedgerKind = Literal["earn", "bonus", "redeem", "reverse", "expire", "adjust"]


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


class CustomerUpdate(OutputRecord):
    """A tier, status or value class change, or a rejected redemption (topic customer-updates)."""
    kind: Literal["tier_changed", "status_changed", "redemption_rejected", "value_changed"]
    from_: Optional[str] = Field(default=None, alias="from")
    to: Optional[str] = None
    reason: Optional[str] = None
    redemption_id: Optional[str] = None
    points: Optional[int] = None
    at: str
    source_event_id: Optional[str]


class CampaignTrigger(OutputRecord):
    """A win-back or birthday campaign to run for a customer (topic campaign-triggers)."""
    trigger_id: str
    campaign: Literal["win_back", "birthday"]
    at: str
    tier: str
    status: str
    points_balance: int
    details: dict = {}


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
