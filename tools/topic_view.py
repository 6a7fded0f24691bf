"""`loyalty tail`: a topic's records in human form or as JSON lines, the last few, all, or as they arrive."""
from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Iterator, Optional

import orjson

from schemas.timeutil import format_ms
from streams.kafka_log import LogRecord, high_watermarks, read_log
from streams.settings import CAMPAIGNS_TOPIC, COUPONS_TOPIC, DLQ_TOPIC, LEDGER_TOPIC, UPDATES_TOPIC

_SUMMARY_CHARS = 160


def decoded(record: LogRecord) -> Any:
    """Return the record's JSON value, or its text (None for a tombstone)."""
    if record.value is None:
        return None
    try:
        return orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return record.value.decode("utf-8", "replace")


def concerns(record: LogRecord, doc: Any, customer_id: str) -> bool:
    """True if the record is about the customer: its key, customer_id, or (a dead letter) the key it had."""
    if record.key == customer_id.encode():
        return True
    if not isinstance(doc, dict):
        return False
    nested = doc.get("record")  # a parked delivery holds the original record
    return customer_id in (doc.get("customer_id"), doc.get("key"),
                           nested.get("customer_id") if isinstance(nested, dict) else None)


def as_json(topic: str, record: LogRecord, doc: Any) -> dict:
    """The record as one JSON line: where it is, when, its key and its value."""
    return {"topic": topic, "partition": record.partition, "offset": record.offset,
            "timestamp": format_ms(record.timestamp_ms) if record.timestamp_ms is not None else None,
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None, "value": doc}


def _summary(topic: str, doc: dict) -> str:
    """What a record says, in a few words, by topic."""
    if topic == LEDGER_TOPIC:
        return f"{doc.get('kind')} {doc.get('points', 0):+d} balance {doc.get('balance_after')}"
    if topic == UPDATES_TOPIC:
        change = f"{doc.get('from')} -> {doc.get('to')}" if doc.get("to") else f"reason {doc.get('reason')}"
        return f"{doc.get('kind')} {change}"
    if topic == CAMPAIGNS_TOPIC:
        return f"{doc.get('campaign')} tier {doc.get('tier')} status {doc.get('status')} " \
               f"points {doc.get('points_balance')}"
    if topic == COUPONS_TOPIC:
        return f"{doc.get('kind')} {doc.get('coupon_id')} reward {doc.get('reward_id')}"
    if topic == DLQ_TOPIC or "reason" in doc:  # dead letters, parked deliveries
        return f"{doc.get('reason')}: {doc.get('error') or doc.get('last_status') or ''}"
    return orjson.dumps(doc).decode()


def human(topic: str, record: LogRecord, doc: Any) -> str:
    """The record as one line: time, partition/offset, customer, and what it says."""
    when = None
    if isinstance(doc, dict):
        when = doc.get("occurred_at") or doc.get("at") or doc.get("parked_at")
    if when is None and record.timestamp_ms is not None:
        when = format_ms(record.timestamp_ms)
    who = record.key.decode("utf-8", "replace") if record.key is not None else "-"
    what = _summary(topic, doc) if isinstance(doc, dict) else repr(doc)
    return f"{when or '-':<20}  {record.partition}/{record.offset:<7} {who:<16} {what}"[:_SUMMARY_CHARS + 50]


def tail(broker: str, topic: str, lines: int, from_beginning: bool, customer_id: Optional[str],
         follow: bool) -> Iterator[tuple[LogRecord, Any]]:
    """Yield (record, decoded value): all records or the last `lines` (by time), then new ones if following.

    An unknown topic raises KeyError.
    """
    ends = high_watermarks(broker, topic)
    wanted = (lambda r, d: True) if customer_id is None else (lambda r, d: concerns(r, d, customer_id))
    if from_beginning:
        yield from _matching(read_log(broker, topic, ends), wanted)
    else:
        # Without a customer, only the last `lines` of each partition can be among the last `lines` of all.
        starts = {p: max(0, end - lines) for p, end in ends.items()} if customer_id is None else None
        # With one, its records are on one partition (keyed), so the last ones read are its latest.
        last = deque(_matching(read_log(broker, topic, ends, starts=starts), wanted),
                     maxlen=None if customer_id is None else lines)
        yield from heapq.nlargest(lines, last, key=lambda item: (item[0].timestamp_ms or 0, item[0].partition,
                                                                 item[0].offset))[::-1]
    if follow:
        yield from _matching(read_log(broker, topic, {p: None for p in ends}, starts=ends), wanted)


def _matching(records: Iterator[LogRecord], wanted) -> Iterator[tuple[LogRecord, Any]]:
    for record in records:
        doc = decoded(record)
        if wanted(record, doc):
            yield record, doc
