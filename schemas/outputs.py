"""Output records as sent to the output topics (docs/outputs.md), and the builders the domain makes them with.

A builder takes the record's fields as keywords named as in its model and returns the record as a dict
(the hot path cannot afford a pydantic model per record): a misspelt keyword fails at the call, and
each builder is checked against its model once, at import.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

UPDATE_TRANSITIONS = ("tier_changed", "status_changed", "value_changed")          # customer updates with from, to
UPDATE_REJECTIONS = ("redemption_rejected", "claim_rejected", "coupon_rejected")  # customer updates with a reason
# Holds at checkout and pending points (docs/outputs.md): a hold placed, captured, released or expired, a hold
# command refused (with a reason), and an order's pending points becoming spendable.
UPDATE_HOLDS = ("hold_placed", "hold_captured", "hold_released", "hold_expired", "hold_rejected", "capture_rejected",
                "release_rejected", "points_released")
LedgerKind = Literal["earn", "bonus", "redeem", "reverse", "expire", "adjust", "coupon_refund"]


class OutputRecord(BaseModel):
    """Base of every output record: frozen, keyed by customer_id."""
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    customer_id: str
    # The version of the policy in force on the partition when the record was made (the fold adds it to
    # every record it returns, so the builders leave it out); None only in records written before it existed.
    policy_version: Optional[str] = None


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
    kind: Literal[UPDATE_TRANSITIONS + UPDATE_REJECTIONS + UPDATE_HOLDS]
    from_: Optional[str] = Field(default=None, alias="from")
    to: Optional[str] = None
    reason: Optional[str] = None
    redemption_id: Optional[str] = None
    points: Optional[int] = None
    claim_id: Optional[str] = None
    reward_id: Optional[str] = None
    coupon_id: Optional[str] = None
    order_id: Optional[str] = None
    hold_id: Optional[str] = None
    expires_at: Optional[str] = None   # hold_placed
    released: Optional[int] = None     # hold_captured: the points held but not captured, given back
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


def _builds(model: type[OutputRecord]) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Check a builder once: its keywords are fields of the model and each lands under the field's JSON name."""
    def check(builder: Callable[..., dict]) -> Callable[..., dict]:
        names = list(inspect.signature(builder).parameters)
        unknown = [name for name in names if name not in model.model_fields]
        sample = {name: object() for name in names}
        record = builder(**sample)
        json_names = {field.alias or name for name, field in model.model_fields.items()}
        misplaced = [name for name in names if name not in unknown
                     and record.get(model.model_fields[name].alias or name) is not sample[name]]
        if unknown or misplaced or not record.keys() <= json_names:
            raise TypeError(f"{builder.__name__} does not build a {model.__name__}: unknown {unknown}, misplaced "
                            f"{misplaced}, keys {sorted(record.keys() - json_names)} not in the model")
        return builder
    return check


@_builds(LedgerEntry)
def ledger_entry(*, entry_id: str, customer_id: str, occurred_at: str, kind: str, points: int, balance_after: int,
                 source_event_id: Optional[str], reward_id: Optional[str] = None,
                 claim_id: Optional[str] = None) -> dict[str, Any]:
    """Build a ledger entry; reward_id and claim_id only for a claim's redeem and a coupon_refund."""
    record = {"entry_id": entry_id, "customer_id": customer_id, "occurred_at": occurred_at, "kind": kind,
              "points": points, "balance_after": balance_after, "source_event_id": source_event_id}
    if reward_id is not None:
        record["reward_id"], record["claim_id"] = reward_id, claim_id
    return record


@_builds(CustomerUpdate)
def transition(*, customer_id: str, kind: str, from_: str, to: str, at: str,
               source_event_id: Optional[str]) -> dict[str, Any]:
    """Build a tier_changed, status_changed or value_changed update."""
    return {"customer_id": customer_id, "kind": kind, "from": from_, "to": to, "at": at,
            "source_event_id": source_event_id}


@_builds(CustomerUpdate)
def redemption_rejected(*, customer_id: str, reason: str, redemption_id: str, points: int, at: str,
                        source_event_id: str) -> dict[str, Any]:
    """Build the update refusing a redemption."""
    return {"customer_id": customer_id, "kind": "redemption_rejected", "reason": reason,
            "redemption_id": redemption_id, "points": points, "at": at, "source_event_id": source_event_id}


@_builds(CustomerUpdate)
def claim_rejected(*, customer_id: str, reason: str, claim_id: str, reward_id: str, at: str,
                   source_event_id: str) -> dict[str, Any]:
    """Build the update refusing a reward claim."""
    return {"customer_id": customer_id, "kind": "claim_rejected", "reason": reason, "claim_id": claim_id,
            "reward_id": reward_id, "at": at, "source_event_id": source_event_id}


@_builds(CustomerUpdate)
def coupon_rejected(*, customer_id: str, reason: str, coupon_id: str, order_id: str, at: str,
                    source_event_id: str) -> dict[str, Any]:
    """Build the update refusing a coupon use."""
    return {"customer_id": customer_id, "kind": "coupon_rejected", "reason": reason, "coupon_id": coupon_id,
            "order_id": order_id, "at": at, "source_event_id": source_event_id}


@_builds(CustomerUpdate)
def hold_update(*, customer_id: str, kind: str, hold_id: str, points: int, at: str, source_event_id: Optional[str],
                reason: Optional[str] = None, expires_at: Optional[str] = None,
                released: Optional[int] = None, order_id: Optional[str] = None) -> dict[str, Any]:
    """Build an update of a hold (placed, captured, released, expired) or a refused hold command (with a reason)."""
    record = {"customer_id": customer_id, "kind": kind, "hold_id": hold_id, "points": points, "at": at,
              "source_event_id": source_event_id}
    if reason is not None:
        record["reason"] = reason
    if expires_at is not None:
        record["expires_at"] = expires_at
    if released is not None:
        record["released"] = released
    if order_id is not None:  # captured by an order.paid naming the hold
        record["order_id"] = order_id
    return record


@_builds(CustomerUpdate)
def points_released(*, customer_id: str, order_id: str, points: int, at: str,
                    source_event_id: Optional[str]) -> dict[str, Any]:
    """Build the update saying an order's pending points became spendable."""
    return {"customer_id": customer_id, "kind": "points_released", "order_id": order_id, "points": points, "at": at,
            "source_event_id": source_event_id}


@_builds(CampaignTrigger)
def campaign_trigger(*, trigger_id: str, campaign: str, customer_id: str, at: str, tier: str, status: str,
                     points_balance: int, details: dict) -> dict[str, Any]:
    """Build a campaign trigger."""
    return {"trigger_id": trigger_id, "campaign": campaign, "customer_id": customer_id, "at": at, "tier": tier,
            "status": status, "points_balance": points_balance, "details": details}


@_builds(CouponRecord)
def coupon_issued(*, customer_id: str, coupon_id: str, reward_id: str, claim_id: str, points: int,
                  coupon_value: Optional[str], percent_off: Optional[int], min_order: Optional[str], expires_at: str,
                  at: str, source_event_id: str) -> dict[str, Any]:
    """Build the record of a coupon issued for a claim."""
    return {"customer_id": customer_id, "kind": "coupon_issued", "coupon_id": coupon_id, "reward_id": reward_id,
            "claim_id": claim_id, "points": points, "coupon_value": coupon_value, "percent_off": percent_off,
            "min_order": min_order, "expires_at": expires_at, "at": at, "source_event_id": source_event_id}


@_builds(CouponRecord)
def coupon_used(*, customer_id: str, coupon_id: str, reward_id: str, order_id: str, at: str,
                source_event_id: str) -> dict[str, Any]:
    """Build the record of a coupon used on an order."""
    return {"customer_id": customer_id, "kind": "coupon_used", "coupon_id": coupon_id, "reward_id": reward_id,
            "order_id": order_id, "at": at, "source_event_id": source_event_id}


@_builds(CouponRecord)
def coupon_expired(*, customer_id: str, coupon_id: str, reward_id: str, points_refunded: int, at: str,
                   source_event_id: Optional[str]) -> dict[str, Any]:
    """Build the record of a coupon expired unused."""
    return {"customer_id": customer_id, "kind": "coupon_expired", "coupon_id": coupon_id, "reward_id": reward_id,
            "points_refunded": points_refunded, "at": at, "source_event_id": source_event_id}
