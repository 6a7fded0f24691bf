"""Input events (docs/events.md): frozen pydantic models, one per event type."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from schemas.policy_doc import PolicyChangedPayload
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, parse_rfc3339_ms, zone

SUPPORTED_SCHEMA_VERSIONS = (1,)
_BIRTHDAY = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")
# Hard bounds whatever the policy says: a valid event must never make the fold overflow or leave 64 bits.
MAX_AMOUNT_MINOR = 10**12          # 10,000,000,000.00; the policy's [limits] max_amount is usually far lower
POINTS_LIMIT = 10**12              # |points| of a redemption or an adjustment
TEXT_MAX = 256                     # free text (reason, channel, reward)
MAX_HOLD_SECONDS = 30 * 86_400     # a hold lasts at most 30 days: a checkout that takes longer holds again
_MAX_AMOUNT = Decimal(MAX_AMOUNT_MINOR) / 100
_CENT = Decimal("0.01")
_PLAIN_AMOUNT = re.compile(r"(\d{1,15})(?:\.(\d{1,2}))?\Z", re.ASCII)


def _amount_to_minor(value: object) -> int:
    """Parse a currency amount (decimal string or number, > 0, at most 2 decimals) into minor units."""
    if isinstance(value, str) and (plain := _PLAIN_AMOUNT.match(value)) is not None:
        # The common form ("1288.5", "12.34") in integers: Decimal is several times slower.
        whole, cents = plain.groups()
        minor = int(whole) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
        if minor <= 0:
            raise ValueError("amount must be greater than 0")
        if minor > MAX_AMOUNT_MINOR:
            raise ValueError(f"amount exceeds the maximum of {_MAX_AMOUNT:.2f}")
        return minor
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("amount must be a decimal string or a number")
    if isinstance(value, str) and len(value) > 32:
        raise ValueError("amount is too long to be a decimal number")
    try:
        # repr() of a float is its shortest round-trip text, so 12.34 stays 12.34 exactly; an int converts
        # exactly (repr() of a huge int would fail).
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError("amount is not a decimal number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("amount must be greater than 0")
    # Compared before any arithmetic: 1e309 or 1e999999999 must not reach a multiplication.
    if amount > _MAX_AMOUNT:
        raise ValueError(f"amount exceeds the maximum of {_MAX_AMOUNT:.2f}")
    cents = amount.quantize(_CENT)  # exact for any amount under the cap (28 digits of precision)
    if cents != amount:
        raise ValueError("amount has more than 2 decimals")
    return int(cents.scaleb(2))


def _occurred_at_to_ms(value: object) -> int:
    """Parse occurred_at (RFC 3339 with an offset) into epoch milliseconds within the accepted years."""
    if not isinstance(value, str):
        raise ValueError("occurred_at must be an RFC 3339 string")
    epoch_ms = parse_rfc3339_ms(value)
    if not MIN_OCCURRED_AT_MS <= epoch_ms < MAX_OCCURRED_AT_MS:
        raise ValueError("occurred_at must be from 2000-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z")
    return epoch_ms


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
        if len(value) > 64:
            raise ValueError(value)
        zone(value)
    except Exception:
        raise ValueError(f"unknown time zone {value[:64]!r}") from None
    return value


AmountMinor = Annotated[
    int,
    BeforeValidator(_amount_to_minor),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "maxLength": 32},
                              {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_AMOUNT_MINOR // 100}],
                    "description": "at most 10000000000.00, and at most the policy's [limits] max_amount"}),
]
OccurredAtMs = Annotated[int, BeforeValidator(_occurred_at_to_ms),
                         WithJsonSchema({"type": "string", "format": "date-time",
                                         "description": "RFC 3339 with an offset, from 2000-01-01T00:00:00Z "
                                                        "up to (not including) 2200-01-01T00:00:00Z"})]
# Control characters are refused: the worker reserves a key starting with NUL for the partition clock,
# and ids end up in keys, logs and outputs where they would only do harm.
NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_CONTROL)]
Text = Annotated[str, Field(max_length=TEXT_MAX)]
CouponId = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_CONTROL)]  # "{customer_id}:{claim_id}"


class Payload(BaseModel):
    """Base of every payload: frozen, unknown fields ignored for forward compatibility."""
    model_config = ConfigDict(frozen=True, extra="ignore")


class ProfilePayload(Payload):
    birthday: Optional[str] = None
    timezone: Optional[str] = None

    _birthday = field_validator("birthday")(_check_birthday)
    _timezone = field_validator("timezone")(_check_timezone)


class OrderPaidPayload(Payload):
    order_id: Id
    amount_minor: AmountMinor = Field(alias="amount")
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    hold_id: Optional[Id] = None  # a hold placed at checkout: the order captures it (docs/rules.md)


class OrderRefundedPayload(Payload):
    order_id: Id
    amount_minor: AmountMinor = Field(alias="amount")


class RedemptionPayload(Payload):
    redemption_id: Id
    points: int = Field(gt=0, le=POINTS_LIMIT, strict=True)
    reward: Optional[Text] = None


class ChannelPayload(Payload):
    channel: Optional[Text] = None


class ReviewPayload(Payload):
    order_id: Id
    rating: int = Field(ge=1, le=5, strict=True)


class AdjustmentPayload(Payload):
    points: int = Field(ge=-POINTS_LIMIT, le=POINTS_LIMIT, strict=True)
    reason: str = Field(min_length=1, max_length=TEXT_MAX)


class RewardClaimedPayload(Payload):
    claim_id: Id
    reward_id: Id


class CouponUsedPayload(Payload):
    coupon_id: CouponId
    order_id: Id
    # The order's amount, for a coupon with a min_order when the order is not (yet) paid in the log.
    amount_minor: Optional[AmountMinor] = Field(default=None, alias="amount")


class HoldRequestedPayload(Payload):
    hold_id: Id
    points: int = Field(gt=0, le=POINTS_LIMIT, strict=True)
    expires_in_s: int = Field(alias="expires_in", gt=0, le=MAX_HOLD_SECONDS, strict=True)  # seconds after occurred_at


class HoldCapturedPayload(Payload):
    hold_id: Id
    points: Optional[int] = Field(default=None, gt=0, le=POINTS_LIMIT, strict=True)  # None: all the hold


class HoldReleasedPayload(Payload):
    hold_id: Id


class EmptyPayload(Payload):
    pass


class EventBase(BaseModel):
    """The envelope shared by every event."""
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    event_id: Id
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


class RewardClaimed(EventBase):
    event_type: Literal["reward.claimed"]
    payload: RewardClaimedPayload


class CouponUsed(EventBase):
    event_type: Literal["coupon.used"]
    payload: CouponUsedPayload


class HoldRequested(EventBase):
    event_type: Literal["hold.requested"]
    payload: HoldRequestedPayload


class HoldCaptured(EventBase):
    event_type: Literal["hold.captured"]
    payload: HoldCapturedPayload


class HoldReleased(EventBase):
    event_type: Literal["hold.released"]
    payload: HoldReleasedPayload


class ClockTicked(EventBase):
    event_type: Literal["clock.tick"]
    customer_id: None = None
    payload: EmptyPayload = EmptyPayload()


class PolicyChanged(EventBase):
    """A new policy for every partition from `effective_at` on (broadcast like a tick; docs/rules.md)."""
    event_type: Literal["policy.changed"]
    customer_id: None = None
    payload: PolicyChangedPayload


CustomerEvent = Union[
    CustomerRegistered, CustomerProfileUpdated, OrderPaid, OrderRefunded, RedemptionRequested,
    CustomerCheckedIn, ContentShared, ReviewPosted, CustomerVisited, PointsAdjusted, CustomerErased,
    RewardClaimed, CouponUsed, HoldRequested, HoldCaptured, HoldReleased,
]
Event = Annotated[Union[CustomerEvent, ClockTicked, PolicyChanged], Field(discriminator="event_type")]

EVENT_TYPES = {cls.model_fields["event_type"].annotation.__args__[0]: cls
               for cls in (*CustomerEvent.__args__, ClockTicked, PolicyChanged)}
INTERACTION_TYPES = frozenset({
    "customer.registered", "customer.profile_updated", "order.paid", "redemption.requested",
    "customer.checked_in", "content.shared", "review.posted", "customer.visited", "reward.claimed", "coupon.used",
    "hold.requested", "hold.captured",
})
