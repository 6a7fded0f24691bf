"""Turn a raw Kafka message into a typed event, or a short machine-readable rejection."""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import EVENT_TYPES, NO_CONTROL, SUPPORTED_SCHEMA_VERSIONS, Event, EventBase
from schemas.fast_events import fast_event
from schemas.policy import Policy
from schemas.timeutil import format_ms

_EVENT_ADAPTER: TypeAdapter = TypeAdapter(Event)
_QUOTE = 64      # at most this many characters of the input appear in a rejection
_DETAIL = 300    # and a detail is at most this long
_AMOUNT_TYPES = frozenset({"order.paid", "order.refunded", "coupon.used"})  # coupon.used: optional


class Rejection(NamedTuple):
    """Why a message cannot be applied: `reason` is a metric label, `detail` is for people."""
    reason: str
    detail: str

    @property
    def error(self) -> str:
        """Return the DLQ error text, e.g. `invalid_field: payload.amount: ...`."""
        return f"{self.reason}: {self.detail}"


def _first_error(exc: ValidationError) -> Rejection:
    """Summarise a pydantic error as a rejection naming the field."""
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in err["loc"][1:] if not isinstance(part, int)) or "event"
    if err["type"] == "missing":
        return Rejection("missing_field", f"{where} is required")
    if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_CONTROL:
        return Rejection("invalid_field", f"{where}: must not contain control characters")
    message = err["msg"].removeprefix("Value error, ")
    return Rejection("invalid_field", f"{where}: {message}"[:_DETAIL])


def validate_document(doc: object) -> Union[EventBase, Rejection]:
    """Validate a decoded JSON document as an event: the fast path when it is sure, else pydantic."""
    event = fast_event(doc)
    return event if event is not None else validate_document_reference(doc)


def validate_document_reference(doc: object) -> Union[EventBase, Rejection]:
    """Validate a decoded JSON document as an event with pydantic alone (the reference, and every rejection)."""
    if not isinstance(doc, dict):
        return Rejection("not_an_object", "the message is not a JSON object")
    event_type = doc.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        # Only a string is quoted: str() of a deeply nested list would recurse.
        shown = repr(event_type[:_QUOTE]) if isinstance(event_type, str) else type(event_type).__name__
        return Rejection("unknown_event_type", f"unknown event_type {shown}")
    version = doc.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > max(SUPPORTED_SCHEMA_VERSIONS):
        return Rejection("unsupported_schema_version", f"schema_version {str(version)[:_QUOTE]} is newer "
                                                       f"than this worker")
    try:
        event = _EVENT_ADAPTER.validate_python(doc)
    except ValidationError as exc:
        return _first_error(exc)
    if event.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection("invalid_field", f"schema_version: {event.schema_version} is not supported")
    return event


def _checked(value: object, key: Optional[bytes], currency: Optional[str], max_amount_minor: Optional[int],
             timestamp_ms: Optional[int], max_future_ms: Optional[int], reference: bool) -> Union[EventBase, Rejection]:
    """Decode, validate and apply the bounds (may raise on inputs nobody foresaw; the caller catches)."""
    if not value:
        return Rejection("invalid_json", "empty message")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return Rejection("invalid_json", f"the message is {type(value).__name__}, not bytes")
    try:
        doc = orjson.loads(value)  # non-UTF-8, NUL outside strings and nesting deeper than 1024 all fail here
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    event = validate_document_reference(doc) if reference else validate_document(doc)
    if isinstance(event, Rejection):
        return event
    if (timestamp_ms is not None and timestamp_ms >= 0 and max_future_ms is not None
            and event.occurred_at_ms > timestamp_ms + max_future_ms):
        # The partition clock never goes back: one event far in the future would expire everyone's points.
        return Rejection("occurred_at_in_future", f"occurred_at {format_ms(event.occurred_at_ms)} is more than "
                                                  f"{max_future_ms // 1000} s after the record's timestamp "
                                                  f"{format_ms(timestamp_ms)}")
    if event.customer_id is None:  # a tick or a policy change: broadcast, no key, no amount
        return event
    if currency is not None and event.event_type == "order.paid" and event.payload.currency != currency:
        return Rejection("unsupported_currency", f"orders must be in {currency}, not {event.payload.currency}")
    if (max_amount_minor is not None and event.event_type in _AMOUNT_TYPES
            and (event.payload.amount_minor or 0) > max_amount_minor):
        amount, limit = event.payload.amount_minor, max_amount_minor
        return Rejection("invalid_field", f"payload.amount: {amount // 100}.{amount % 100:02d} exceeds the maximum "
                                          f"of {limit // 100}.{limit % 100:02d} ([limits] max_amount)")
    if key is None:
        return event
    if key != event.customer_id.encode():
        # A wrong key puts the customer on another partition and would split their state.
        return Rejection("key_mismatch", "the message key must equal customer_id")
    return event


def validate_message(value: Optional[bytes], key: Optional[bytes] = None, currency: Optional[str] = None, *,
                     max_amount_minor: Optional[int] = None, timestamp_ms: Optional[int] = None,
                     max_future_ms: Optional[int] = None, reference: bool = False) -> Union[EventBase, Rejection]:
    """Validate a raw message value (key must equal the customer_id; currency, amount and time bounds); never raise.

    key=None skips the key check; timestamp_ms is the Kafka record's timestamp (None or < 0: unknown);
    reference=True skips the fast path (for the test that compares both).
    """
    try:
        return _checked(value, key, currency, max_amount_minor, timestamp_ms, max_future_ms, reference)
    except Exception as exc:  # e.g. RecursionError: no input may stop the worker, it goes to the DLQ instead
        return _unforeseen(exc)


def validate_record(value: Optional[bytes], key: Optional[bytes], policy: Policy,
                    timestamp_ms: Optional[int] = None, reference: bool = False) -> Union[EventBase, Rejection]:
    """Validate a Kafka record as the worker and replay do: with the policy's currency and [limits]."""
    limits = policy.limits
    try:  # validate_message's work without its call: this runs once per record
        # A customer event without a key landed on an arbitrary partition: b"" makes it a key_mismatch.
        return _checked(value, key if key is not None else b"", policy.currency, limits.max_amount_minor,
                        timestamp_ms, limits.max_future_ms, reference)
    except Exception as exc:  # as in validate_message
        return _unforeseen(exc)


def _unforeseen(exc: Exception) -> Rejection:
    """Reject an input that made validation raise."""
    return Rejection("invalid_field", f"event: cannot be validated ({type(exc).__name__})")
