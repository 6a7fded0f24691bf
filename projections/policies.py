"""A partition's policies: the one in force and the changes scheduled after its clock (docs/rules.md)."""
from __future__ import annotations

from typing import NamedTuple, Optional

import orjson

from projections.effects import Effect, stamped
from projections.state import CustomerState
from projections.timeline import next_due_ms, reevaluate_into, refresh_orders, walk_due_times
from schemas.events import EventBase
from schemas.policy import STATUSES, Policy
from schemas.policy_doc import policy_document, policy_version

NEVER_MS = 1 << 62  # no change scheduled: the fold's one int comparison per clock move never passes it


class PolicyChange(NamedTuple):
    """One policy and the moment it takes effect (source: the policy.changed event id, or how it came)."""
    policy: Policy
    version: str
    effective_ms: int
    source: str
    name: Optional[str] = None

    def to_json(self) -> dict:
        return {"policy": policy_document(self.policy), "version": self.version, "name": self.name,
                "effective_ms": self.effective_ms, "source": self.source}

    @classmethod
    def from_json(cls, doc: dict) -> "PolicyChange":
        return cls(Policy.model_validate(doc["policy"]), doc["version"], doc["effective_ms"], doc["source"],
                   doc.get("name"))


def first_change(policy: Policy, source: str = "default") -> PolicyChange:
    """Return the policy a partition starts with before any policy.changed (built-in default or a file)."""
    return PolicyChange(policy, policy_version(policy), 0, source)


class PolicySchedule(NamedTuple):
    """The change in force and those scheduled, soonest first (equal times in log order); never changed in place."""
    in_force: PolicyChange
    scheduled: tuple[PolicyChange, ...] = ()

    @property
    def next_ms(self) -> int:
        """Return when the next scheduled change takes effect (NEVER_MS: none)."""
        return self.scheduled[0].effective_ms if self.scheduled else NEVER_MS

    def with_scheduled(self, change: PolicyChange) -> "PolicySchedule":
        """Return this schedule with one more change (after those scheduled for the same time)."""
        later = sorted((*self.scheduled, change), key=lambda c: c.effective_ms)  # stable: log order kept
        return PolicySchedule(self.in_force, tuple(later))

    def enforced(self, change: PolicyChange) -> "PolicySchedule":
        """Return this schedule with `change` in force (and no longer scheduled)."""
        return PolicySchedule(change, tuple(c for c in self.scheduled if c is not change))

    def to_bytes(self) -> bytes:
        return orjson.dumps({"in_force": self.in_force.to_json(),
                             "scheduled": [change.to_json() for change in self.scheduled]})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "PolicySchedule":
        doc = orjson.loads(raw)
        return cls(PolicyChange.from_json(doc["in_force"]),
                   tuple(PolicyChange.from_json(change) for change in doc["scheduled"]))


def reevaluate_under(state: CustomerState, at_ms: int, policy: Policy, source_event_id: str) -> list[Effect]:
    """Re-evaluate a customer under the policy taking effect at at_ms: spend window, tier, status, value, due time."""
    effects = walk_due_times(state, at_ms, policy, source_event_id) if (
        state.next_due_ms is not None and state.next_due_ms <= at_ms) else []
    at_ms = max(at_ms, state.as_of_ms)
    state.as_of_ms = at_ms
    refresh_orders(state, at_ms, policy)  # the trailing spend under the new window; R, F and M due at once
    state.rfm = None  # so that the value class is judged again even when the scores stay (new class thresholds)
    reevaluate_into(effects, state, at_ms, policy, source_event_id)
    due_ms = state.next_due_ms = next_due_ms(state, policy)
    if due_ms is not None and due_ms <= at_ms:
        effects.extend(walk_due_times(state, at_ms, policy, source_event_id))
    return effects


WHAT_IF_SOURCE = "what-if"  # the source of the marker a what-if replay schedules at its --policy-from


def overlaid(base: dict, overlay: dict) -> dict:
    """Return base with overlay's keys replacing its own, table by table (a list or a value replaces whole)."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = overlaid(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


class WhatIf:
    """A replay's other policy: a file's keys over each policy in force (or the file whole), from a moment on."""

    def __init__(self, document: dict, replace: bool = False, from_ms: int = 0) -> None:
        self.document, self.replace, self.from_ms = document, replace, from_ms
        self._shaped: dict[str, tuple[Policy, str]] = {}  # version in force -> (policy folded instead, its version)

    def shape(self, change: PolicyChange) -> tuple[Policy, str]:
        """Return the policy (and its version) folded while `change` is in force; pydantic errors: an invalid overlay."""
        shaped = self._shaped.get(change.version)
        if shaped is None:
            document = self.document if self.replace else overlaid(policy_document(change.policy), self.document)
            policy = Policy.model_validate(document)
            shaped = self._shaped[change.version] = (policy, policy_version(policy))
        return shaped


class PolicyFolding:
    """The partition fold's handling of policy changes (a mixin: PartitionFold holds the state it reads)."""

    def _start_policies(self, schedule: PolicySchedule, clock_ms: int, what_if: Optional[WhatIf]) -> None:
        """Hold these policies from the start (a what-if shapes them from its moment on: a marker scheduled)."""
        self.what_if, self._shaping = what_if, what_if is not None and what_if.from_ms <= clock_ms
        if what_if is not None and not self._shaping:
            schedule = schedule.with_scheduled(PolicyChange(None, WHAT_IF_SOURCE, what_if.from_ms, WHAT_IF_SOURCE))
        self._set_schedule(schedule)
        self._batch_schedule = schedule

    def _set_schedule(self, schedule: PolicySchedule) -> None:
        """Hold these policies: the one in force folds, the next scheduled one's time is the check's bound."""
        self.schedule = schedule
        if self._shaping:
            self.policy, self.policy_version = self.what_if.shape(schedule.in_force)
        else:
            self.policy, self.policy_version = schedule.in_force.policy, schedule.in_force.version
        self._policy_due_ms = schedule.next_ms

    def change_policy(self, event: EventBase) -> list[Effect]:
        """Schedule a policy.changed; one dated at or before the clock takes effect at once (docs/rules.md)."""
        payload, schedule = event.payload, self.schedule
        if event.event_id in (schedule.in_force.source, *(c.source for c in schedule.scheduled)):
            return []  # the same record sent again
        change = PolicyChange(payload.policy, payload.version, payload.effective_at_ms, event.event_id, payload.name)
        if change.effective_ms > self.clock_ms:
            self._set_schedule(schedule.with_scheduled(change))
            return []
        return self._enforce(change, self.clock_ms)

    def _enforce_due_changes(self, at_ms: int, source_event_id: Optional[str]) -> list[Effect]:
        """Bring in each change due by at_ms at its own time: what fell due before it, under the old policy, first."""
        effects: list[Effect] = []
        while self._policy_due_ms <= at_ms:
            change = self.schedule.scheduled[0]
            self._policy_due_ms = NEVER_MS  # moving the clock to the change's time must not come back here
            effects.extend(self.advance_clock(change.effective_ms, source_event_id))
            effects.extend(self._enforce(change, change.effective_ms))
        return effects

    def _enforce(self, change: PolicyChange, at_ms: int) -> list[Effect]:
        """Put a change in force at at_ms and re-evaluate every customer of the partition under it (in id order)."""
        if change.policy is None:  # a what-if's moment: from here on, the policy in force shaped
            self._shaping = True
            self._set_schedule(PolicySchedule(self.schedule.in_force, tuple(c for c in self.schedule.scheduled if c is not change)))
        else:
            self._set_schedule(self.schedule.enforced(change))
        policy, version, store, due, effects = self.policy, self.policy_version, self.store, self.due, []
        customer_ids = set().union(*(self.segments.get(status, ()) for status in STATUSES))
        for customer_id in sorted(customer_ids):
            state = store.get(customer_id)
            if state is None:
                continue
            self._remember(customer_id, state)
            status, tier, balance, value = state.status, state.tier, state.points_balance, state.value
            effects.extend(stamped(reevaluate_under(state, at_ms, policy, change.source), version))
            self._shift(customer_id, state, status, tier, balance, value)
            store.put(customer_id, state)
            due.schedule(customer_id, state.next_due_ms)
        return effects
