"""`loyalty dlq`: what the dead-letter topic holds, its records as editable JSON lines, and their re-drive."""
from __future__ import annotations

import base64
from collections import Counter
from typing import Any, Iterable, Iterator, NamedTuple, Optional

import orjson

from schemas.policy import Policy
from schemas.validate import Rejection, validate_record
from streams.kafka_log import read_topic
from streams.settings import DLQ_TOPIC, Settings
from tools.produce import EventSender

EXAMPLES = 3  # examples kept per reason and event type


def dead_letters(broker: str, reason: Optional[str] = None) -> Iterator[dict]:
    """Yield each DLQ record as an export line: why it was refused, where it came from, and the event itself.

    `event` is the original record parsed (edit it, then re-drive the line); a record that is not JSON, or
    was cut for its size, has `event` null and its `raw` text or base64 instead.
    """
    for record in read_topic(broker, DLQ_TOPIC):
        letter = orjson.loads(record.value)
        if reason is not None and letter.get("reason") != reason:
            continue
        event = _event(letter)
        line = {"reason": letter.get("reason"), "error": letter.get("error"), "key": letter.get("key"),
                "source": letter.get("source"), "dlq": {"partition": record.partition, "offset": record.offset},
                "event": event}
        if event is None:
            line.update(raw=letter.get("raw"), raw_encoding=letter.get("raw_encoding"))
        yield line


def _event(letter: dict) -> Any:
    """Return the refused record's JSON, or None if it is not JSON or was cut."""
    if letter.get("raw_truncated"):
        return None
    raw = letter.get("raw") or ""
    data = base64.b64decode(raw) if letter.get("raw_encoding") == "base64" else raw.encode("utf-8")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def event_type(line: dict) -> str:
    """The refused record's event_type, or '-' when it has none that can be read."""
    event = line.get("event")
    kind = event.get("event_type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else "-"


def summary(lines: Iterable[dict]) -> dict:
    """Count dead letters by reason and by (reason, event type), keeping a few examples of each."""
    by_reason: Counter = Counter()
    groups: dict[tuple[str, str], dict] = {}
    for line in lines:
        by_reason[line["reason"]] += 1
        group = groups.setdefault((line["reason"], event_type(line)), {"count": 0, "examples": []})
        group["count"] += 1
        if len(group["examples"]) < EXAMPLES:
            group["examples"].append({"dlq": line["dlq"], "key": line["key"], "error": line["error"]})
    return {"total": sum(by_reason.values()), "by_reason": dict(by_reason.most_common()),
            "groups": [{"reason": reason, "event_type": kind, **group}
                       for (reason, kind), group in sorted(groups.items(), key=lambda item: -item[1]["count"])]}


class Checked(NamedTuple):
    """One line of a re-drive file: the bytes to send, or why it is still invalid."""
    line: int
    value: Optional[bytes]
    problem: Optional[str]


def check_lines(lines: Iterable[bytes], policy: Policy) -> Iterator[Checked]:
    """Validate each non-blank line (an event, or an export line whose `event` was fixed) as the worker would."""
    for number, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Checked(number, None, f"invalid_json: {str(exc)[:100]}")
            continue
        if isinstance(doc, dict) and "event" in doc and "reason" in doc:  # an export line
            doc, raw = doc["event"], orjson.dumps(doc["event"])
        customer_id = doc.get("customer_id") if isinstance(doc, dict) else None
        key = customer_id.encode() if isinstance(customer_id, str) else None
        # The same validation as the worker's (the policy's currency and limits), so what is sent is applied.
        checked = validate_record(raw, key, policy)
        yield Checked(number, None, checked.error) if isinstance(checked, Rejection) else Checked(number, raw, None)


def redrive(settings: Settings, checked: Iterable[Checked]) -> tuple[int, list[Checked]]:
    """Send the valid lines to customer-events as they are (their event ids kept); return (sent, invalid)."""
    invalid: list[Checked] = []
    sender = EventSender(settings)
    try:
        for item in checked:
            if item.problem is not None:
                invalid.append(item)
            elif not sender.send_raw(item.value, item.line):
                invalid.append(item._replace(problem="too large for the broker"))
    finally:
        sender.close()
    return sender.sent, invalid
