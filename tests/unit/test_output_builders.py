"""Output records are built by keyword through builders checked against the output schemas (schemas/outputs.py)."""
from __future__ import annotations

from typing import Optional

import pytest

from projections.customer import _HANDLERS
from schemas.events import CustomerEvent
from schemas.outputs import (
    UPDATE_HOLDS, UPDATE_REJECTIONS, UPDATE_TRANSITIONS, CustomerUpdate, LedgerEntry, _builds, ledger_entry, transition,
)


def test_a_builder_with_a_keyword_that_is_no_field_of_its_model_fails_at_import():
    with pytest.raises(TypeError, match="unknown \\['balance'\\]"):
        @_builds(LedgerEntry)
        def misspelt(*, customer_id: str, balance: int) -> dict:
            return {"customer_id": customer_id, "balance_after": balance}


def test_a_builder_that_puts_a_value_under_another_field_fails_at_import():
    with pytest.raises(TypeError, match="misplaced \\['reward_id', 'claim_id'\\]"):
        @_builds(LedgerEntry)
        def swapped(*, reward_id: Optional[str], claim_id: Optional[str]) -> dict:
            return {"reward_id": claim_id, "claim_id": reward_id}


def test_a_builder_that_writes_a_key_its_model_lacks_fails_at_import():
    with pytest.raises(TypeError, match="keys \\['from_'\\] not in the model"):
        @_builds(CustomerUpdate)
        def unaliased(*, customer_id: str, from_: str) -> dict:
            return {"customer_id": customer_id, "from": from_, "from_": from_}


def test_a_misspelt_keyword_at_a_call_fails_at_once():
    with pytest.raises(TypeError):
        transition(customer_id="c1", kind="tier_changed", from_="standard", too="premium", at="x",
                   source_event_id=None)


def test_builders_write_the_json_names_in_the_order_the_topics_always_had():
    entry = ledger_entry(entry_id="c1:1", customer_id="c1", occurred_at="2026-01-01T02:00:00Z", kind="earn",
                         points=5, balance_after=5, source_event_id="e1")
    assert list(entry) == ["entry_id", "customer_id", "occurred_at", "kind", "points", "balance_after",
                           "source_event_id"]
    update = transition(customer_id="c1", kind="tier_changed", from_="standard", to="premium",
                        at="2026-01-01T02:00:00Z", source_event_id="e1")
    assert list(update) == ["customer_id", "kind", "from", "to", "at", "source_event_id"]
    CustomerUpdate.model_validate(update)


def test_every_update_kind_is_a_transition_a_rejection_or_a_hold_update():
    assert not set(UPDATE_TRANSITIONS) & set(UPDATE_REJECTIONS) and not set(UPDATE_HOLDS) & {
        *UPDATE_TRANSITIONS, *UPDATE_REJECTIONS}
    assert set(CustomerUpdate.model_fields["kind"].annotation.__args__) == {
        *UPDATE_TRANSITIONS, *UPDATE_REJECTIONS, *UPDATE_HOLDS}


def test_every_customer_event_class_has_its_handler():
    assert set(_HANDLERS) == set(CustomerEvent.__args__)
