"""Event builders: raw documents, validated events and JSON lines, at times counted in days from T0."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any, Optional

import orjson

from schemas.events import EventBase
from schemas.validate import Rejection, validate_document

T0 = "2026-01-01T10:00:00+08:00"
_ids = itertools.count(1)


def day(days: float, hours: float = 0, base: str = T0) -> str:
    """Return the RFC 3339 time `days` days (and `hours` hours) after base, in base's offset."""
    return (datetime.fromisoformat(base) + timedelta(days=days, hours=hours)).isoformat()


def doc(event_type: str, at: str = T0, customer: Optional[str] = "c1", id: Optional[str] = None,
        **payload: Any) -> dict:
    """Build a raw event document with a fresh event id."""
    return {"event_id": f"e{next(_ids)}" if id is None else id, "event_type": event_type, "customer_id": customer,
            "occurred_at": at, "payload": payload}


def ev(event_type: str, at: str = T0, customer: Optional[str] = "c1", id: Optional[str] = None,
       **payload: Any) -> EventBase:
    """Build a validated event (fails the test if the document is rejected)."""
    event = validate_document(doc(event_type, at, customer, id, **payload))
    assert not isinstance(event, Rejection), event
    return event


def tick(at: str) -> EventBase:
    """Build a clock.tick at that time."""
    return ev("clock.tick", at, customer=None)


def paid(order_id: str, amount="100.00", at: str = day(0), **payload: Any) -> EventBase:
    """Build c1's order.paid (amount a decimal string or a number, in major units)."""
    return ev("order.paid", at, order_id=order_id, amount=amount, **payload)


def refund(order_id: str, amount, at: str = day(1)) -> EventBase:
    """Build c1's order.refunded."""
    return ev("order.refunded", at, order_id=order_id, amount=amount)


def event_line(event_id: str, event_type: str, customer_id: Optional[str], occurred_at: str, **payload: Any) -> bytes:
    """Build one JSON line as a shop sends it (what `loyalty produce` reads and the worker consumes)."""
    return orjson.dumps({"event_id": event_id, "event_type": event_type, "customer_id": customer_id,
                         "occurred_at": occurred_at, "schema_version": 1, "payload": payload})
