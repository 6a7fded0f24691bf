"""`loyalty policy`: publish a policy change to every partition, and read the changes back from the log."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

import orjson

from projections.policies import PolicyChange, PolicySchedule, first_change
from schemas.events import PolicyChanged
from schemas.policy import load_policy
from schemas.policy_doc import policy_changed_document, policy_digest
from schemas.timeutil import format_ms, parse_rfc3339_ms
from schemas.validate import Rejection, validate_message
from streams.kafka_log import read_topic
from streams.settings import INPUT_TOPIC, Settings
from tools.produce import send_documents


def publish(settings: Settings, path: str, effective_ms: int, name: Optional[str]) -> dict:
    """Send a policy.changed for the policy in `path` to every partition; return the document sent."""
    policy = load_policy(path)  # PolicyError: the loader's one line (exit 2)
    published = format_ms(int(time.time() * 1000))
    document = policy_changed_document(policy, format_ms(effective_ms), published,
                                       f"policy-{policy_digest(policy)}-{uuid.uuid4().hex[:8]}", name)
    send_documents(settings, [document])
    return document


@dataclass
class PolicyLog:
    """The changes in the log (once each, in log order) and each partition's policies as of its clock."""
    changes: list[dict] = field(default_factory=list)
    schedules: dict[int, PolicySchedule] = field(default_factory=dict)
    clocks_ms: dict[int, int] = field(default_factory=dict)


def read_policy_log(settings: Settings, first_policy_file: Optional[str]) -> PolicyLog:
    """Read the input topic and follow each partition's policies as its fold does (changes at the clock)."""
    log, seen = PolicyLog(), set()
    first = PolicySchedule(first_change(load_policy(first_policy_file), "file" if first_policy_file else "default"))
    for record in read_topic(settings.broker, INPUT_TOPIC):
        schedule = log.schedules.setdefault(record.partition, first)
        clock_ms = log.clocks_ms.get(record.partition, 0)
        event = validate_message(record.value) if record.value and b"policy.changed" in record.value else None
        if isinstance(event, PolicyChanged):
            payload = event.payload
            if event.event_id not in seen:
                seen.add(event.event_id)
                log.changes.append(_change_row(event))
            change = PolicyChange(payload.policy, payload.version, payload.effective_at_ms, event.event_id,
                                  payload.name)
            schedule = (schedule.with_scheduled(change) if change.effective_ms > clock_ms
                        else schedule.enforced(change))
        elif not isinstance(event, Rejection):  # a refused policy.changed changes nothing
            clock_ms = max(clock_ms, _occurred_at_ms(record.value))
            while schedule.scheduled and schedule.next_ms <= clock_ms:
                schedule = schedule.enforced(schedule.scheduled[0])
        log.schedules[record.partition], log.clocks_ms[record.partition] = schedule, clock_ms
    return log


def _change_row(event: PolicyChanged) -> dict:
    """Describe one change for `policy history`."""
    payload = event.payload
    return {"version": payload.version, "name": payload.name, "effective_at": format_ms(payload.effective_at_ms),
            "published_at": format_ms(event.occurred_at_ms), "event_id": event.event_id}


def _occurred_at_ms(value: Optional[bytes]) -> int:
    """Return a record's occurred_at in ms (0 when it has none a fold would take: it goes to the DLQ)."""
    try:
        return parse_rfc3339_ms(orjson.loads(value)["occurred_at"])
    except Exception:
        return 0


def show_rows(log: PolicyLog) -> dict:
    """Group the partitions by the policy in force and list the changes scheduled (`policy show`)."""
    in_force: dict[str, dict] = {}
    scheduled: dict[tuple, dict] = {}
    for partition, schedule in sorted(log.schedules.items()):
        current = schedule.in_force
        row = in_force.setdefault(current.version, {"version": current.version, "source": current.source,
                                                    "effective_at": format_ms(current.effective_ms),
                                                    "partitions": []})
        row["partitions"].append(partition)
        for change in schedule.scheduled:
            key = (change.effective_ms, change.source)
            scheduled.setdefault(key, {"version": change.version, "effective_at": format_ms(change.effective_ms),
                                       "event_id": change.source, "partitions": []})["partitions"].append(partition)
    return {"in_force": list(in_force.values()), "scheduled": [scheduled[k] for k in sorted(scheduled)]}
