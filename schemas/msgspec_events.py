"""Decode and validate a plainly well-formed message in one msgspec pass, or say it is not sure (None)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from schemas.events import (
    MAX_HOLD_SECONDS, POINTS_LIMIT, TEXT_MAX, AdjustmentPayload, ChannelPayload, ClockTicked, ContentShared,
    CouponUsed, CouponUsedPayload, CustomerCheckedIn, CustomerErased, CustomerProfileUpdated, CustomerRegistered,
    CustomerVisited, EmptyPayload, EventBase, HoldCaptured, HoldCapturedPayload, HoldReleased, HoldReleasedPayload,
    HoldRequested, HoldRequestedPayload, OrderPaid, OrderPaidPayload, OrderRefunded, OrderRefundedPayload,
    PointsAdjusted, ProfilePayload, RedemptionPayload, RedemptionRequested, ReviewPayload, ReviewPosted,
    RewardClaimed, RewardClaimedPayload, _amount_to_minor, _check_birthday, _check_timezone,
)
from schemas.fast_events import _SHARED_MAX, _model, _new, _set
from schemas.timeutil import MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, parse_rfc3339_ms

# The models' bounds as msgspec types, each Struct's fields in its model's order under the model's names.
# Text fields leave out the no-control pattern: msgspec would call Python's `re` per string, and there `$` also
# matches before a final newline where pydantic's regex does not; str.isprintable() after decoding is faster
# and stricter. Anything msgspec refuses, and anything these checks are not sure of (an unknown key, an odd
# amount, printable-only text), goes to orjson and pydantic, which alone write rejections.
# tests/unit/test_validation_fast_path.py proves both paths give the same result.
Id = Annotated[str, Meta(min_length=1, max_length=128)]
CustomerId = Annotated[str, Meta(min_length=1, max_length=64)]
CouponId = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(max_length=TEXT_MAX)]
Points = Annotated[int, Meta(gt=0, le=POINTS_LIMIT)]
Amount = Union[str, int, float]  # checked by the model's own function after decoding
_AMOUNT = msgspec.field(name="amount")
_OPTIONS = {"forbid_unknown_fields": True, "kw_only": True, "frozen": True}


class _Payload(Struct, **_OPTIONS):
    """Base of the payload Structs: an unknown key is not for this path to judge."""


class _Profile(_Payload):
    birthday: Union[str, None, UnsetType] = UNSET
    timezone: Union[str, None, UnsetType] = UNSET


class _OrderPaid(_Payload):
    order_id: Id
    amount_minor: Amount = _AMOUNT
    currency: Union[Annotated[str, Meta(min_length=3, max_length=3)], UnsetType] = UNSET
    hold_id: Union[Id, None, UnsetType] = UNSET


class _OrderRefunded(_Payload):
    order_id: Id
    amount_minor: Amount = _AMOUNT


class _Redemption(_Payload):
    redemption_id: Id
    points: Points
    reward: Union[Text, None, UnsetType] = UNSET


class _Channel(_Payload):
    channel: Union[Text, None, UnsetType] = UNSET


class _Review(_Payload):
    order_id: Id
    rating: Annotated[int, Meta(ge=1, le=5)]


class _Adjustment(_Payload):
    points: Annotated[int, Meta(ge=-POINTS_LIMIT, le=POINTS_LIMIT)]
    reason: Annotated[str, Meta(min_length=1, max_length=TEXT_MAX)]


class _RewardClaimed(_Payload):
    claim_id: Id
    reward_id: Id


class _CouponUsed(_Payload):
    coupon_id: CouponId
    order_id: Id
    amount_minor: Union[Amount, None, UnsetType] = msgspec.field(default=UNSET, name="amount")


class _HoldRequested(_Payload):
    hold_id: Id
    points: Points
    expires_in_s: Annotated[int, Meta(gt=0, le=MAX_HOLD_SECONDS)] = msgspec.field(name="expires_in")


class _HoldCaptured(_Payload):
    hold_id: Id
    points: Union[Points, None, UnsetType] = UNSET


class _HoldReleased(_Payload):
    hold_id: Id


class _Empty(_Payload):
    pass


class _Event(Struct, tag_field="event_type", **_OPTIONS):
    """The envelope: schema_version 1 only (pydantic speaks for any other)."""
    event_id: Id
    occurred_at: str
    schema_version: Union[Literal[1], UnsetType] = UNSET


def _event(tag: str, payload: type, required: bool, broadcast: bool = False) -> type:
    """A tagged Struct of one event type: its payload Struct, required or not, and customer_id or none."""
    fields = {"payload": payload if required else Union[payload, UnsetType]}
    defaults = {} if required else {"payload": UNSET}
    fields["customer_id"] = Union[None, UnsetType] if broadcast else CustomerId
    if broadcast:
        defaults["customer_id"] = UNSET
    namespace = {"__annotations__": fields, **defaults}
    return type(f"_{tag}", (_Event,), namespace, tag=tag, **_OPTIONS)


def _printable(value: str) -> str:
    """Check an id: printable implies no control character (the models' pattern) and no lone surrogate."""
    if not value.isprintable():
        raise ValueError("not sure")
    return value


def _currency(value: str) -> str:
    """Check ^[A-Z]{3}$ (three characters already)."""
    if not (value.isascii() and value.isalpha() and value.isupper()):
        raise ValueError("not sure")
    return value


# Per event type: the event model, its payload model and Struct, whether the payload is required, and the
# checks after decoding of the payload's fields that are present and not null, as (field, check).
_ID = _printable
_TYPES = (
    (CustomerRegistered, ProfilePayload, _Profile, False,
     (("birthday", _check_birthday), ("timezone", _check_timezone))),
    (CustomerProfileUpdated, ProfilePayload, _Profile, False,
     (("birthday", _check_birthday), ("timezone", _check_timezone))),
    (OrderPaid, OrderPaidPayload, _OrderPaid, True,
     (("order_id", _ID), ("amount_minor", _amount_to_minor), ("currency", _currency), ("hold_id", _ID))),
    (OrderRefunded, OrderRefundedPayload, _OrderRefunded, True, (("order_id", _ID), ("amount_minor", _amount_to_minor))),
    (RedemptionRequested, RedemptionPayload, _Redemption, True, (("redemption_id", _ID),)),
    (CustomerCheckedIn, EmptyPayload, _Empty, False, ()),
    (ContentShared, ChannelPayload, _Channel, False, ()),
    (ReviewPosted, ReviewPayload, _Review, True, (("order_id", _ID),)),
    (CustomerVisited, ChannelPayload, _Channel, False, ()),
    (PointsAdjusted, AdjustmentPayload, _Adjustment, True, ()),
    (CustomerErased, EmptyPayload, _Empty, False, ()),
    (RewardClaimed, RewardClaimedPayload, _RewardClaimed, True, (("claim_id", _ID), ("reward_id", _ID))),
    (CouponUsed, CouponUsedPayload, _CouponUsed, True,
     (("coupon_id", _ID), ("order_id", _ID), ("amount_minor", _amount_to_minor))),
    (HoldRequested, HoldRequestedPayload, _HoldRequested, True, (("hold_id", _ID),)),
    (HoldCaptured, HoldCapturedPayload, _HoldCaptured, True, (("hold_id", _ID),)),
    (HoldReleased, HoldReleasedPayload, _HoldReleased, True, (("hold_id", _ID),)),
    (ClockTicked, EmptyPayload, _Empty, False, ()),
)
_TEXT_ONLY = (EmptyPayload, ChannelPayload, ProfilePayload)  # few distinct values: one shared instance each
_SHARED: dict[tuple, object] = {}


def _spec(cls: type, payload_cls: type, struct: type, required: bool, checks: tuple) -> tuple:
    """What decode_event needs of one event type, its Struct's fields checked against the model's."""
    names = tuple(payload_cls.model_fields)
    assert struct.__struct_fields__ == names, (struct, names)  # astuple() hands values in the model's order
    defaults = tuple(field.default for field in payload_cls.model_fields.values())
    event_type = cls.model_fields["event_type"].annotation.__args__[0]
    return (event_type, cls, payload_cls, None if required else cls.model_fields["payload"].default,
            names, defaults, checks, payload_cls in _TEXT_ONLY)


_SPECS: dict[type, tuple] = {}
for _cls, _payload_cls, _struct, _required, _checks in _TYPES:
    _spec_of_type = _spec(_cls, _payload_cls, _struct, _required, _checks)
    _SPECS[_event(_spec_of_type[0], _struct, _required, broadcast=_cls is ClockTicked)] = _spec_of_type
_DECODER = msgspec.json.Decoder(Union[tuple(_SPECS)])
_ENVELOPE_SET = frozenset({"event_id", "customer_id", "occurred_at_ms", "schema_version", "event_type", "payload"})
_astuple = msgspec.structs.astuple


def _payload(cls: type, names: tuple, defaults: tuple, checks: tuple, raw: Struct) -> object:
    """Build the payload model from its decoded Struct (a check that raises means not sure)."""
    decoded = _astuple(raw)
    if UNSET in decoded:  # a field left out: its default, and not in the fields set
        values = {}
        fields_set = set()
        for name, value, default in zip(names, decoded, defaults):
            if value is UNSET:
                values[name] = default
            else:
                values[name] = value
                fields_set.add(name)
    else:
        values = dict(zip(names, decoded))
        fields_set = set(names)
    for name, check in checks:
        value = values[name]
        if value is not None and name in fields_set:
            values[name] = check(value)
    return _model(cls, values, fields_set)


def _shared_payload(cls: type, names: tuple, defaults: tuple, checks: tuple, raw: Struct) -> object:
    """Return one instance per distinct payload of only texts (a frozen value, as pydantic's default is)."""
    key = (cls, *_astuple(raw))  # UNSET and None stay apart: their fields sets differ
    payload = _SHARED.get(key)
    if payload is None:
        payload = _payload(cls, names, defaults, checks, raw)
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[key] = payload
    return payload


def decode_event(value: bytes) -> Optional[EventBase]:
    """Return the event pydantic would build from this message, or None when not sure (never raise)."""
    try:
        struct = _DECODER.decode(value)
        event_type, cls, payload_cls, default_payload, names, defaults, checks, shared = _SPECS[type(struct)]
        raw_payload = struct.payload
        if raw_payload is UNSET:
            payload = default_payload  # pydantic hands out the model's default itself, not a copy
        else:
            payload = (_shared_payload if shared else _payload)(payload_cls, names, defaults, checks, raw_payload)
        occurred_at_ms = parse_rfc3339_ms(struct.occurred_at)  # the very function the model calls
    except Exception:  # msgspec's refusals, and a check after decoding: pydantic will tell which (if any)
        return None
    event_id, customer_id = struct.event_id, struct.customer_id
    if not (MIN_OCCURRED_AT_MS <= occurred_at_ms < MAX_OCCURRED_AT_MS and event_id.isprintable()
            and (customer_id is None or customer_id is UNSET or customer_id.isprintable())):
        return None
    if customer_id is not UNSET and struct.schema_version is not UNSET and raw_payload is not UNSET:
        fields_set = set(_ENVELOPE_SET)
    else:
        fields_set = {"event_id", "occurred_at_ms", "event_type"}
        fields_set.update(name for name, value in (("customer_id", customer_id), ("payload", raw_payload),
                                                   ("schema_version", struct.schema_version)) if value is not UNSET)
        if customer_id is UNSET:
            customer_id = None
    event = _new(cls)  # _model's work inline: this runs once per record
    _set(event, "__dict__", {"event_id": event_id, "customer_id": customer_id, "occurred_at_ms": occurred_at_ms,
                             "schema_version": 1, "event_type": event_type, "payload": payload})
    _set(event, "__pydantic_fields_set__", fields_set)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event
