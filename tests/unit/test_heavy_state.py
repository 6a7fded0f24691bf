"""A very active customer's state stops growing once its memories reach their retention (bench/heavy_state.py)."""
from __future__ import annotations

from bench.heavy_state import heavy_state
from projections.customer import DEFAULT_POLICY
from schemas.policy import Policy


def test_a_customer_with_ten_events_a_day_stops_growing_after_the_retention_period():
    heavy = heavy_state(DEFAULT_POLICY)
    # After 400 days (orders) and 365 (lots), a second year adds entries only as fast as old ones leave.
    assert heavy.one_year < heavy.at_end < 1.15 * heavy.one_year
    assert heavy.largest_field == "lots"


def test_a_customer_with_ten_events_a_day_keeps_a_week_of_event_ids_not_400_days():
    heavy = heavy_state(DEFAULT_POLICY)
    # 7 days (+ a day before they go in bulk) of ten ids of ~31 bytes: under 3 KB. With 400 days: ~128 KB.
    assert heavy.fields["seen_event_ids"] < 3_000
    # The state after two years: ~51 KB (lots ~27 KB and orders ~17 KB); with 400 days of ids it was ~177 KB.
    assert heavy.at_end < 60_000


def test_a_longer_event_id_memory_grows_the_state_by_what_the_ids_take():
    default = heavy_state(DEFAULT_POLICY, days=60)
    long = heavy_state(Policy.model_validate({"retention": {"event_id_days": 400}}), days=60)
    # 52 days of ten ids more: each id costs ~31 bytes in the stored state.
    assert long.at_end - default.at_end > 52 * 10 * 30
