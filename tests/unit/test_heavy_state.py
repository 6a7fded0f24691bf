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
    # 7 days (+ a day before they go in bulk) of ten ids of ~25 bytes: under 3 KB. With 400 days: ~100 KB.
    assert heavy.fields["seen_event_ids"] < 3_000
    # The state after two years: ~33 KB of msgpack (lots ~16 KB and orders ~12 KB; ~51 KB as JSON), stored
    # compressed in ~10 KB; with 400 days of ids it was ~177 KB as JSON.
    assert sum(heavy.fields.values()) < 40_000 and heavy.at_end < 15_000


def test_a_longer_event_id_memory_grows_the_state_by_what_the_ids_take():
    default = heavy_state(DEFAULT_POLICY, days=60)
    long = heavy_state(Policy.model_validate({"retention": {"event_id_days": 400}}), days=60)
    # 52 days of ten ids more: each id costs ~25 bytes of msgpack (before a large state is compressed).
    assert sum(long.fields.values()) - sum(default.fields.values()) > 52 * 10 * 24
