"""Input events of CONTRACT section 1: frozen pydantic models, one per event type."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from schemas.timeutil import parse_rfc3339_ms, zone

SUPPORTED_SCHEMA_VERSIONS = (1,)
_BIRTHDAY = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")


def _amount_to_minor(value: object) -> int:
    """Parse a currency amount (decimal string or number, > 0, at most 2 decimals) into minor units."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("amount must be a decimal string or a number")
    try:
        # repr() of a float is its shortest round-trip text, so 12.34 stays 12.34 exactly.
        amount = Decimal(value if isinstance(value, str) else repr(value))
    except InvalidOperation:
        raise ValueError("amount is not a decimal number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("amount must be greater than 0")
    minor = amount * 100
    if minor != minor.to_integral_value():
        raise ValueError("amount has more than 2 decimals")
    return int(minor)


def _occurred_at_to_ms(value: object) -> int:
    """Parse occurred_at (RFC 3339 with an offset) into epoch milliseconds."""
    if not isinstance(value, str):
        raise ValueError("occurred_at must be an RFC 3339 string")
    return parse_rfc3339_ms(value)


def _check_birthday(value: Optional[str]) -> Optional[str]:
    """Accept YYYY-MM-DD or MM-DD naming a real calendar day (29 Feb allowed without a year)."""
    if value is None:
        return None
    match = _BIRTHDAY.match(value)
    if not match:
        raise ValueError("birthday must be YYYY-MM-DD or MM-DD")
    year = int(match.group(1) or 2000)  # 2000 is a leap year, so "02-29" is valid
    date(year, int(match.group(2)), int(match.group(3)))
    return value


def _check_timezone(value: Optional[str]) -> Optional[str]:
    """Accept a known IANA time zone name."""
    if value is None:
        return None
    try:
        zone(value)
    except Exception:
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


AmountMinor = Annotated[
    int,
    BeforeValidator(_amount_to_minor),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d{1,2})?$"},
                              {"type": "number", "exclusiveMinimum": 0}]}),
]
OccurredAtMs = Annotated[int, BeforeValidator(_occurred_at_to_ms),
                         WithJsonSchema({"type": "string", "format": "date-time"})]
# Control characters are refused: the worker reserves a key starting with NUL for the partition clock.
CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class Payload(BaseModel):
    """Base of every payload: frozen, unknown fields ignored for forward compatibility."""
    model_config = ConfigDict(frozen=True, extra="ignore")


class ProfilePayload(Payload):
    birthday: Optional[str] = None
    timezone: Optional[str] = None

    _birthday = field_validator("birthday")(_check_birthday)
    _timezone = field_validator("timezone")(_check_timezone)


class OrderPaidPayload(Payload):
    order_id: str = Field(min_length=1, max_length=128)
    amount_minor: AmountMinor = Field(alias="amount")
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class OrderRefundedPayload(Payload):
    order_id: str = Field(min_length=1, max_length=128)
    amount_minor: AmountMinor = Field(alias="amount")


class RedemptionPayload(Payload):
    redemption_id: str = Field(min_length=1, max_length=128)
    points: int = Field(gt=0, strict=True)
    reward: Optional[str] = None


class ChannelPayload(Payload):
    channel: Optional[str] = None


class ReviewPayload(Payload):
    order_id: str = Field(min_length=1, max_length=128)
    rating: int = Field(ge=1, le=5, strict=True)


class AdjustmentPayload(Payload):
    points: int = Field(strict=True)
    reason: str = Field(min_length=1)


class EmptyPayload(Payload):
    pass


class EventBase(BaseModel):
    """The envelope shared by every event."""
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    event_id: str = Field(min_length=1, max_length=128)
    customer_id: CustomerId
    occurred_at_ms: OccurredAtMs = Field(alias="occurred_at")
    schema_version: int = Field(default=1, strict=True)


class CustomerRegistered(EventBase):
    event_type: Literal["customer.registered"]
    payload: ProfilePayload = ProfilePayload()


class CustomerProfileUpdated(EventBase):
    event_type: Literal["customer.profile_updated"]
    payload: ProfilePayload = ProfilePayload()


class OrderPaid(EventBase):
    event_type: Literal["order.paid"]
    payload: OrderPaidPayload


class OrderRefunded(EventBase):
    event_type: Literal["order.refunded"]
    payload: OrderRefundedPayload


class RedemptionRequested(EventBase):
    event_type: Literal["redemption.requested"]
    payload: RedemptionPayload


class CustomerCheckedIn(EventBase):
    event_type: Literal["customer.checked_in"]
    payload: EmptyPayload = EmptyPayload()


class ContentShared(EventBase):
    event_type: Literal["content.shared"]
    payload: ChannelPayload = ChannelPayload()


class ReviewPosted(EventBase):
    event_type: Literal["review.posted"]
    payload: ReviewPayload


class CustomerVisited(EventBase):
    event_type: Literal["customer.visited"]
    payload: ChannelPayload = ChannelPayload()


class PointsAdjusted(EventBase):
    event_type: Literal["points.adjusted"]
    payload: AdjustmentPayload


class CustomerErased(EventBase):
    event_type: Literal["customer.erased"]
    payload: EmptyPayload = EmptyPayload()


class ClockTicked(EventBase):
    event_type: Literal["clock.tick"]
    customer_id: None = None
    payload: EmptyPayload = EmptyPayload()


CustomerEvent = Union[
    CustomerRegistered, CustomerProfileUpdated, OrderPaid, OrderRefunded, RedemptionRequested,
    CustomerCheckedIn, ContentShared, ReviewPosted, CustomerVisited, PointsAdjusted, CustomerErased,
]
Event = Annotated[Union[CustomerEvent, ClockTicked], Field(discriminator="event_type")]

EVENT_TYPES = {cls.model_fields["event_type"].annotation.__args__[0]: cls
               for cls in (*CustomerEvent.__args__, ClockTicked)}
PURCHASE_TYPES = frozenset({"order.paid"})
INTERACTION_TYPES = frozenset({
    "customer.registered", "customer.profile_updated", "order.paid", "redemption.requested",
    "customer.checked_in", "content.shared", "review.posted", "customer.visited",
})
