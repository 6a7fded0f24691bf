"""Given/when/then helpers for the pure domain: build events, fold them, check every effect."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any, Optional

from projections.customer import DEFAULT_POLICY
from projections.partition import MemoryStore, PartitionFold
from projections.state import CustomerState, Effect
from schemas.events import EventBase
from schemas.outputs import CampaignTrigger, CouponRecord, CustomerUpdate, LedgerEntry
from schemas.policy import Policy
from schemas.validate import Rejection, validate_document

T0 = "2026-01-01T10:00:00+08:00"
_T0 = datetime.fromisoformat(T0)
_ids = itertools.count(1)
_OUTPUT_MODELS = {"ledger": LedgerEntry, "update": CustomerUpdate, "campaign": CampaignTrigger,
                  "coupon": CouponRecord}


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


def check_effect(effect: Effect) -> None:
    """Fail unless the effect record is a valid output record (docs/outputs.md)."""
    if effect.kind == "notice":
        assert isinstance(effect.record.get("notice"), str), effect
        return
    _OUTPUT_MODELS[effect.kind].model_validate(effect.record)


class Scenario:
    """A partition fold over a memory store that checks every effect and the points invariants."""

    def __init__(self, policy: Policy = DEFAULT_POLICY) -> None:
        self.store = MemoryStore()
        self.fold = PartitionFold(self.store, policy)
        self.history: list[Effect] = []
        self.effects: list[Effect] = []
        self.outcomes: list[str] = []

    def apply(self, *events: EventBase) -> list[Effect]:
        """Apply events in log order; return their effects."""
        effects: list[Effect] = []
        for event in events:
            outcome, more = self.fold.apply(event)
            for effect in more:
                check_effect(effect)
            self.outcomes.append(outcome)
            effects.extend(more)
            self.history.extend(more)
            self.check_invariants()
        return effects

    def when(self, *events: EventBase) -> "Scenario":
        """Apply the events under test; their outcomes and effects become the ones asserted on."""
        self.outcomes = []
        self.effects = self.apply(*events)
        return self

    def then(self, customer: str = "c1", **expected: Any) -> "Scenario":
        """Assert state attributes of a customer, e.g. then(points_balance=5, tier="premium")."""
        state = self.state(customer)
        actual = {name: getattr(state, name) for name in expected}
        assert actual == expected
        return self

    def state(self, customer: str = "c1") -> CustomerState:
        return self.store[customer]

    def of(self, effect_kind: str, /, **match: Any) -> list[dict]:
        """Return the records of the last `when` effects of that kind matching every given field."""
        return [e.record for e in self.effects
                if e.kind == effect_kind and all(e.record.get(k) == v for k, v in match.items())]

    def ledger(self, **match: Any) -> list[dict]:
        return self.of("ledger", **match)

    def updates(self, **match: Any) -> list[dict]:
        return self.of("update", **match)

    def campaigns(self, **match: Any) -> list[dict]:
        return self.of("campaign", **match)

    def coupons(self, **match: Any) -> list[dict]:
        return self.of("coupon", **match)

    def notices(self, **match: Any) -> list[dict]:
        return self.of("notice", **match)

    def points(self, **match: Any) -> list[int]:
        """Return the points of the last ledger entries, e.g. points(kind="earn") == [100]."""
        return [record["points"] for record in self.ledger(**match)]

    def check_invariants(self) -> None:
        """Balance == sum of ledger entries == lots - debt, and no debt while lots are held."""
        for customer_id, state in self.store.items():
            ledger_sum = sum(e.record["points"] for e in self.history
                             if e.kind == "ledger" and e.record["customer_id"] == customer_id)
            lots_sum = sum(lot.points for lot in state.lots)
            assert state.points_balance == ledger_sum == lots_sum - state.debt_points, state
            assert not (state.debt_points > 0 and state.lots), state
            assert all(lot.points > 0 for lot in state.lots), state


def given(*events: EventBase, policy: Policy = DEFAULT_POLICY) -> Scenario:
    """Start a scenario with these events already applied."""
    scenario = Scenario(policy)
    scenario.apply(*events)
    return scenario
