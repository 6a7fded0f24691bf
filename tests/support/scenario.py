"""Given/when/then for the pure domain: fold events in a partition, check every effect and the invariants."""
from __future__ import annotations

from typing import Any

from projections.customer import DEFAULT_POLICY
from projections.partition import MemoryStore, PartitionFold
from projections.effects import (BecameDormant, CampaignTriggered, CheckoutUpdated, CouponChanged, Effect,
                                 LedgerEntryMade, Outcome, Output, RefundOfUnknownOrder, RequestRefused, Transition)
from projections.state import CustomerState
from schemas.events import EventBase
from schemas.policy import Policy
from tests.support.invariants import check_effect, check_points, ledger_sums


UPDATES = (Transition, RequestRefused, CheckoutUpdated)  # the effects sent to customer-updates


class Scenario:
    """A partition fold over a memory store that checks every effect and the points invariants."""

    def __init__(self, policy: Policy = DEFAULT_POLICY) -> None:
        self.store = MemoryStore()
        self.fold = PartitionFold(self.store, policy)
        self.history: list[Effect] = []
        self.effects: list[Effect] = []
        self.outcomes: list[Outcome] = []

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

    def of(self, effect_type: type | tuple[type, ...], /, **match: Any) -> list[dict]:
        """Return the records of the last `when` output effects of that type matching every given field, as the rules
        make them: without the policy version the fold adds (check_effect checks it on every record; see
        versions())."""
        return [{k: v for k, v in e.record.items() if k != "policy_version"}
                for e in self._matching(effect_type, match)]

    def versions(self, effect_type: type | tuple[type, ...], /, **match: Any) -> list[str]:
        """Return the policy_version of each record of(effect_type, **match) would return."""
        return [e.record["policy_version"] for e in self._matching(effect_type, match)]

    def _matching(self, effect_type: type | tuple[type, ...], match: dict) -> list[Output]:
        return [e for e in self.effects
                if isinstance(e, effect_type) and all(e.record.get(k) == v for k, v in match.items())]

    def ledger(self, **match: Any) -> list[dict]:
        return self.of(LedgerEntryMade, **match)

    def updates(self, **match: Any) -> list[dict]:
        return self.of(UPDATES, **match)

    def campaigns(self, **match: Any) -> list[dict]:
        return self.of(CampaignTriggered, **match)

    def coupons(self, **match: Any) -> list[dict]:
        return self.of(CouponChanged, **match)

    def notices(self) -> list[Effect]:
        """Return the last `when` effects that are only counted (BecameDormant, RefundOfUnknownOrder)."""
        return [e for e in self.effects if isinstance(e, (BecameDormant, RefundOfUnknownOrder))]

    def points(self, **match: Any) -> list[int]:
        """Return the points of the last ledger entries, e.g. points(kind="earn") == [100]."""
        return [record["points"] for record in self.ledger(**match)]

    def check_invariants(self) -> None:
        """Every customer's balance equals its ledger and its lots (tests.support.invariants.check_points)."""
        sums = ledger_sums(e.record for e in self.history if isinstance(e, LedgerEntryMade))
        for customer_id, state in self.store.items():
            check_points(state, sums.get(customer_id, 0))


def given(*events: EventBase, policy: Policy = DEFAULT_POLICY) -> Scenario:
    """Start a scenario with these events already applied."""
    scenario = Scenario(policy)
    scenario.apply(*events)
    return scenario
