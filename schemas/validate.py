"""Turn a raw Kafka message into a typed event, or a short machine-readable rejection."""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import EVENT_TYPES, SUPPORTED_SCHEMA_VERSIONS, ClockTicked, Event, EventBase

_EVENT_ADAPTER: TypeAdapter = TypeAdapter(Event)


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
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"][1:] if not isinstance(part, int)) or "event"
    if err["type"] == "missing":
        return Rejection("missing_field", f"{where} is required")
    message = err["msg"].removeprefix("Value error, ")
    return Rejection("invalid_field", f"{where}: {message}")


def validate_document(doc: object) -> Union[EventBase, Rejection]:
    """Validate a decoded JSON document as an event."""
    if not isinstance(doc, dict):
        return Rejection("not_an_object", "the message is not a JSON object")
    event_type = doc.get("event_type")
    if event_type not in EVENT_TYPES:
        return Rejection("unknown_event_type", f"unknown event_type {str(event_type)[:64]!r}")
    version = doc.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > max(SUPPORTED_SCHEMA_VERSIONS):
        return Rejection("unsupported_schema_version", f"schema_version {version} is newer than this worker")
    try:
        event = _EVENT_ADAPTER.validate_python(doc)
    except ValidationError as exc:
        return _first_error(exc)
    if event.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection("invalid_field", f"schema_version: {event.schema_version} is not supported")
    return event


def validate_message(value: Optional[bytes], key: Optional[bytes] = None,
                     currency: Optional[str] = None) -> Union[EventBase, Rejection]:
    """Validate a raw message value (and its key, which must equal the customer_id, and the policy's currency)."""
    if not value:
        return Rejection("invalid_json", "empty message")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    event = validate_document(doc)
    if isinstance(event, Rejection) or isinstance(event, ClockTicked):
        return event
    if currency is not None and event.event_type == "order.paid" and event.payload.currency != currency:
        return Rejection("unsupported_currency", f"orders must be in {currency}, not {event.payload.currency}")
    if key is None:
        return event
    if key != event.customer_id.encode():
        # A wrong key puts the customer on another partition and would split their state.
        return Rejection("key_mismatch", "the message key must equal customer_id")
    return event
