"""A very active customer's state stops growing once its memories reach their retention (bench/heavy_state.py)."""
from __future__ import annotations

from bench.heavy_state import heavy_state
from projections.customer import DEFAULT_POLICY
from schemas.policy import Policy


def test_a_customer_with_ten_events_a_day_stops_growing_after_the_retention_period():
    heavy = heavy_state(DEFAULT_POLICY)
    # After 400 days (event ids, orders) and 365 (lots), a second year adds entries only as fast as old ones leave.
    assert heavy.one_year < heavy.at_end < 1.15 * heavy.one_year
    assert heavy.largest_field == "seen_event_ids"


def test_a_shorter_event_id_memory_shrinks_the_state_by_what_the_ids_took():
    default = heavy_state(DEFAULT_POLICY, days=60)
    short = heavy_state(Policy.model_validate({"retention": {"event_id_days": 7}}), days=60)
    # 53 days of ten ids fewer: each id costs tens of bytes in the stored state.
    assert default.at_end - short.at_end > 53 * 10 * 20
