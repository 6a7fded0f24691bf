"""Build the event of a plainly well-formed document without pydantic, or say it is not sure (None)."""
from __future__ import annotations

from typing import Callable, Optional

from schemas.events import (
    POINTS_LIMIT, TEXT_MAX, AdjustmentPayload, ChannelPayload, ClockTicked, ContentShared, CouponUsed,
    CouponUsedPayload, CustomerCheckedIn, CustomerErased, CustomerProfileUpdated, CustomerRegistered,
    CustomerVisited, EmptyPayload, EventBase, HoldCaptured, HoldCapturedPayload, HoldReleased, HoldReleasedPayload,
    HoldRequested, HoldRequestedPayload, MAX_HOLD_SECONDS, OrderPaid, OrderPaidPayload, OrderRefunded, OrderRefundedPayload,
    Payload, PointsAdjusted, ProfilePayload, RedemptionPayload, RedemptionRequested, RewardClaimed,
    RewardClaimedPayload, ReviewPayload, ReviewPosted, _amount_to_minor, _check_birthday, _check_timezone,
)
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, parse_rfc3339_ms

# Pydantic's models are the reference, but validating with them costs about twice this path's time per event.
# This path accepts only what it can check for certain (exact types, no extra keys, printable text) and
# builds the same frozen models directly; anything else returns None and goes through pydantic, which alone
# writes rejections. tests/unit/test_validation_fast_path.py proves both paths give the same result.
_new = object.__new__
_set = object.__setattr__
_ABSENT = object()    # a key not in the document
_REQUIRED = object()  # a field without a default
_BAD = object()       # a checker is not sure the value is valid


def _model(cls: type, values: dict, fields_set: set) -> Payload | EventBase:
    """Build a model instance holding exactly what pydantic-core sets after validating (frozen all the same)."""
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)    # extra="ignore" keeps none
    _set(obj, "__pydantic_private__", None)  # no private attributes
    return obj


def _text(max_length: int, min_length: int = 1, nullable: bool = False) -> Callable[[object], object]:
    """Check a string field; printable implies no control character (the pattern) and no lone surrogate."""
    def check(value: object) -> object:
        if type(value) is str and min_length <= len(value) <= max_length and value.isprintable():
            return value
        return None if nullable and value is None else _BAD
    return check


def _strict_int(low: int, high: int) -> Callable[[object], object]:
    """Check a strict integer field (bool and float are not ints there) within [low, high]."""
    def check(value: object) -> object:
        return value if type(value) is int and low <= value <= high else _BAD
    return check


def _nullable(check: Callable[[object], object]) -> Callable[[object], object]:
    """Let null through a checker (an optional field given as null)."""
    return lambda value: None if value is None else check(value)


def _calling(validator: Callable[[object], object], nullable: bool = False) -> Callable[[object], object]:
    """Check a field with the model's own validator function; any exception means not sure."""
    def check(value: object) -> object:
        if nullable and value is None:
            return None
        try:
            return validator(value)
        except Exception:
            return _BAD
    return check


def _string(value: object) -> object:
    """Let only an exact str reach a validator that pydantic calls after its own str check."""
    if type(value) is not str:
        raise TypeError("not a str")
    return value


def _currency(value: object) -> object:
    """Check ^[A-Z]{3}$."""
    if type(value) is str and len(value) == 3 and value.isascii() and value.isalpha() and value.isupper():
        return value
    return _BAD


def _default(cls: type) -> Payload:
    """Return the default payload of an event model."""
    return cls.model_fields["payload"].default


# Payloads of only texts repeat (a channel, a birthday and time zone): one instance each, up to a bound. The
# models are frozen values, and pydantic itself hands every event without a payload the same default instance.
_TEXT_ONLY = frozenset({EmptyPayload, ChannelPayload, ProfilePayload})
_SHARED: dict[tuple, Payload] = {}
_SHARED_MAX = 4096
_ENVELOPE = (("event_id", "event_id"), ("customer_id", "customer_id"), ("occurred_at", "occurred_at_ms"),
             ("schema_version", "schema_version"), ("event_type", "event_type"), ("payload", "payload"))
_ID = _text(128)
_AMOUNT = _calling(_amount_to_minor)
_PROFILE = (("birthday", "birthday", _calling(lambda v: _check_birthday(_string(v)), nullable=True), None),
            ("timezone", "timezone", _calling(lambda v: _check_timezone(_string(v)), nullable=True), None))
_CHANNEL = (("channel", "channel", _text(TEXT_MAX, 0, nullable=True), None),)
# Per event type: the event model, its payload model, the model's default payload (None: required), and the
# payload's fields as (JSON key, field name, checker, default).
_SPECS: dict[str, tuple] = {
    "customer.registered": (CustomerRegistered, ProfilePayload, _default(CustomerRegistered), _PROFILE),
    "customer.profile_updated": (CustomerProfileUpdated, ProfilePayload, _default(CustomerProfileUpdated), _PROFILE),
    "order.paid": (OrderPaid, OrderPaidPayload, None, (
        ("order_id", "order_id", _ID, _REQUIRED), ("amount", "amount_minor", _AMOUNT, _REQUIRED),
        ("currency", "currency", _currency, "CNY"), ("hold_id", "hold_id", _text(128, nullable=True), None))),
    "order.refunded": (OrderRefunded, OrderRefundedPayload, None, (
        ("order_id", "order_id", _ID, _REQUIRED), ("amount", "amount_minor", _AMOUNT, _REQUIRED))),
    "redemption.requested": (RedemptionRequested, RedemptionPayload, None, (
        ("redemption_id", "redemption_id", _ID, _REQUIRED), ("points", "points", _strict_int(1, POINTS_LIMIT), _REQUIRED),
        ("reward", "reward", _text(TEXT_MAX, 0, nullable=True), None))),
    "customer.checked_in": (CustomerCheckedIn, EmptyPayload, _default(CustomerCheckedIn), ()),
    "content.shared": (ContentShared, ChannelPayload, _default(ContentShared), _CHANNEL),
    "review.posted": (ReviewPosted, ReviewPayload, None, (
        ("order_id", "order_id", _ID, _REQUIRED), ("rating", "rating", _strict_int(1, 5), _REQUIRED))),
    "customer.visited": (CustomerVisited, ChannelPayload, _default(CustomerVisited), _CHANNEL),
    "points.adjusted": (PointsAdjusted, AdjustmentPayload, None, (
        ("points", "points", _strict_int(-POINTS_LIMIT, POINTS_LIMIT), _REQUIRED),
        ("reason", "reason", _text(TEXT_MAX), _REQUIRED))),
    "customer.erased": (CustomerErased, EmptyPayload, _default(CustomerErased), ()),
    "reward.claimed": (RewardClaimed, RewardClaimedPayload, None, (
        ("claim_id", "claim_id", _ID, _REQUIRED), ("reward_id", "reward_id", _ID, _REQUIRED))),
    "coupon.used": (CouponUsed, CouponUsedPayload, None, (
        ("coupon_id", "coupon_id", _text(200), _REQUIRED), ("order_id", "order_id", _ID, _REQUIRED),
        ("amount", "amount_minor", _calling(_amount_to_minor, nullable=True), None))),
    "hold.requested": (HoldRequested, HoldRequestedPayload, None, (
        ("hold_id", "hold_id", _ID, _REQUIRED), ("points", "points", _strict_int(1, POINTS_LIMIT), _REQUIRED),
        ("expires_in", "expires_in_s", _strict_int(1, MAX_HOLD_SECONDS), _REQUIRED))),
    "hold.captured": (HoldCaptured, HoldCapturedPayload, None, (
        ("hold_id", "hold_id", _ID, _REQUIRED),
        ("points", "points", _nullable(_strict_int(1, POINTS_LIMIT)), None))),
    "hold.released": (HoldReleased, HoldReleasedPayload, None, (("hold_id", "hold_id", _ID, _REQUIRED),)),
    "clock.tick": (ClockTicked, EmptyPayload, _default(ClockTicked), ()),
}


def _payload(cls: type, fields: tuple, raw: dict) -> Optional[Payload]:
    """Build a payload model from a JSON object whose every key is a known field, or None when not sure."""
    values: dict = {}
    fields_set: set = set()
    for key, name, check, default in fields:
        if key in raw:
            value = check(raw[key])
            if value is _BAD:
                return None
            fields_set.add(name)
        elif default is _REQUIRED:
            return None
        else:
            value = default
        values[name] = value
    # An unknown key is ignored by pydantic, but may be a field's name instead of its alias: let it decide.
    return _model(cls, values, fields_set) if len(raw) == len(fields_set) else None


def _shared_payload(cls: type, fields: tuple, raw: dict) -> Optional[Payload]:
    """Return one instance per distinct payload of only texts (a frozen value, as pydantic's default is)."""
    try:
        key = (cls, *raw.items())
        payload = _SHARED.get(key)
    except TypeError:  # an unhashable value, which no text field accepts: let the caller decide
        return _payload(cls, fields, raw)
    if payload is None:
        payload = _payload(cls, fields, raw)
        if payload is not None and len(_SHARED) < _SHARED_MAX:
            _SHARED[key] = payload
    return payload


def fast_event(doc: object) -> Optional[EventBase]:
    """Return the event pydantic would build from a plainly well-formed document, or None when not sure."""
    if type(doc) is not dict:
        return None
    event_type = doc.get("event_type")
    spec = _SPECS.get(event_type) if type(event_type) is str else None
    if spec is None:
        return None
    cls, payload_cls, default_payload, fields = spec
    event_id = doc.get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= 128 or not event_id.isprintable():
        return None
    try:
        occurred_at_ms = parse_rfc3339_ms(doc.get("occurred_at"))  # the very function the model calls
    except Exception:
        return None
    if not MIN_OCCURRED_AT_MS <= occurred_at_ms < MAX_OCCURRED_AT_MS:
        return None
    customer_id = doc.get("customer_id", _ABSENT)
    if cls is ClockTicked:
        if customer_id is not None and customer_id is not _ABSENT:
            return None
    elif type(customer_id) is not str or not 0 < len(customer_id) <= 64 or not customer_id.isprintable():
        return None
    version = doc.get("schema_version", _ABSENT)
    if version is not _ABSENT and (type(version) is not int or version != 1):
        return None
    raw_payload = doc.get("payload", _ABSENT)
    if raw_payload is _ABSENT:
        payload = default_payload  # pydantic hands out the model's default itself, not a copy
        if payload is None:
            return None
    elif type(raw_payload) is dict:
        payload = (_shared_payload if payload_cls in _TEXT_ONLY else _payload)(payload_cls, fields, raw_payload)
        if payload is None:
            return None
    else:
        return None
    if len(doc) == 6 and customer_id is not _ABSENT and version is not _ABSENT and raw_payload is not _ABSENT:
        fields_set = {"event_id", "customer_id", "occurred_at_ms", "schema_version", "event_type", "payload"}
    else:
        fields_set = {name for key, name in _ENVELOPE if key in doc}
        if len(doc) != len(fields_set):  # an unknown key, or occurred_at_ms beside occurred_at: pydantic decides
            return None
    return _model(cls, {"event_id": event_id, "customer_id": None if customer_id is _ABSENT else customer_id,
                        "occurred_at_ms": occurred_at_ms, "schema_version": 1, "event_type": event_type,
                        "payload": payload}, fields_set)
