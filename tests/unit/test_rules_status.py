"""docs/rules.md, activity status and the win-back campaign."""
from __future__ import annotations

from hypothesis import given as given_h, settings, strategies as st

from projections.customer import DEFAULT_POLICY
from projections.state import CustomerState
from projections.timeline import reevaluate_into, status_for, tier_for
from schemas.timeutil import DAY_MS
from tests.support.events import day, ev, paid, tick
from tests.support.scenario import given

MS = 1 / 3600_000  # one millisecond in hours


def statuses(s):
    return [(u["from"], u["to"]) for u in s.updates(kind="status_changed")]


def test_a_new_customer_without_a_purchase_is_potential():
    s = given().when(ev("customer.registered"))
    assert s.updates() == []
    s.then(status="potential")


def test_a_purchase_makes_a_customer_active():
    s = given(ev("customer.registered")).when(paid("o1", "10.00", day(1)))
    assert s.updates(kind="status_changed") == [{
        "customer_id": "c1", "kind": "status_changed", "from": "potential", "to": "active",
        "at": "2026-01-02T02:00:00Z", "source_event_id": s.effects[0].record["source_event_id"],
    }]


def test_active_lasts_until_30_days_after_the_last_interaction():
    s = given(paid("o1", "10.00")).when(tick(day(30, hours=-MS)))
    assert statuses(s) == []
    s.when(tick(day(30)))
    assert statuses(s) == [("active", "potential")]


def test_any_interaction_keeps_a_buyer_active():
    s = given(paid("o1", "10.00"), ev("customer.visited", day(25))).when(tick(day(54)))
    s.then(status="active")
    s.when(tick(day(55)))
    s.then(status="potential")


def test_active_needs_a_purchase_in_the_last_365_days():
    s = given(paid("o1", "10.00"), ev("customer.visited", day(340)), ev("customer.checked_in", day(360)))
    s.when(tick(day(365, hours=-MS)))
    s.then(status="active")
    s.when(tick(day(365)))
    assert statuses(s) == [("active", "potential")]


def test_interactions_without_a_purchase_never_make_a_customer_active():
    s = given(ev("customer.registered")).when(ev("customer.checked_in", day(1)), ev("content.shared", day(1)))
    s.then(status="potential")


def test_dormant_at_180_days_without_an_interaction_with_a_win_back():
    s = given(paid("o1", "300.00")).when(tick(day(180, hours=-MS)))
    s.then(status="potential")
    clock = tick(day(180))
    s.when(clock)
    assert statuses(s) == [("potential", "dormant")]
    assert s.campaigns() == [{
        "trigger_id": "win_back:c1:2026-06-30", "campaign": "win_back", "customer_id": "c1",
        "at": "2026-06-30T02:00:00Z", "tier": "standard", "status": "dormant", "points_balance": 300,
        "details": {"last_interaction_at": "2026-01-01T02:00:00Z"},
    }]


def test_a_new_customer_without_any_interaction_turns_dormant_180_days_after_first_seen():
    s = given(ev("points.adjusted", points=5, reason="migration")).then(status="potential")
    s.when(tick(day(180)))
    assert statuses(s) == [("potential", "dormant")]
    assert [c["trigger_id"] for c in s.campaigns()] == ["win_back:c1:2026-06-30"]


def test_events_that_are_not_interactions_do_not_postpone_dormancy():
    s = given(paid("o1", "10.00"), ev("points.adjusted", day(100), points=5, reason="x"),
              ev("order.refunded", day(150), order_id="o1", amount="1"), ev("customer.erased", day(170)))
    s.when(tick(day(180)))
    s.then(status="dormant")


def test_an_interaction_wakes_a_dormant_customer():
    s = given(ev("customer.registered"), tick(day(200))).then(status="dormant")
    assert statuses(s.when(ev("customer.visited", day(201)))) == [("dormant", "potential")]
    assert statuses(s.when(paid("o1", "10.00", day(202)))) == [("potential", "active")]


def test_no_second_win_back_within_90_days_even_after_waking():
    s = given(ev("customer.registered")).when(tick(day(180)))
    assert [c["trigger_id"] for c in s.campaigns()] == ["win_back:c1:2026-06-30"]
    # a late interaction dated day 50, arriving at day 200, makes the customer potential again
    s.when(tick(day(200)), ev("customer.visited", day(50)))
    assert statuses(s) == [("dormant", "potential")]
    # 180 days after day 50 they are dormant again, but 230 - 180 < 90: no second win-back
    s.when(tick(day(230)))
    assert statuses(s) == [("potential", "dormant")]
    assert s.campaigns() == []


def test_a_second_win_back_fires_once_the_cooldown_has_passed():
    s = given(ev("customer.registered"), tick(day(180)), ev("customer.visited", day(200)))
    s.when(tick(day(380)))
    assert [c["trigger_id"] for c in s.campaigns()] == ["win_back:c1:2027-01-16"]
    assert s.state().last_win_back_ms == s.state().as_of_ms


def test_win_back_fires_only_on_becoming_dormant_not_while_staying_dormant():
    s = given(ev("customer.registered"), tick(day(180)))
    assert s.when(tick(day(300)), tick(day(500))).campaigns() == []


def test_win_back_period_is_the_utc_date_of_becoming_dormant():
    s = given(ev("customer.registered", "2026-01-01T07:00:00+08:00")).when(tick(day(200)))
    assert [c["trigger_id"] for c in s.campaigns()] == ["win_back:c1:2026-06-29"]


@settings(max_examples=300, deadline=None)
@given_h(st.integers(0, 400), st.one_of(st.none(), st.integers(0, 400)), st.one_of(st.none(), st.integers(0, 400)),
         st.integers(0, 800),
         st.one_of(st.sampled_from([99_999, 100_000, 499_999, 500_000]), st.integers(0, 700_000)))
def test_the_fold_computes_status_and_tier_as_status_for_and_tier_for(first, interaction, purchase, at, spend):
    # reevaluate_into writes both rules out (it runs for every event and due visit); they must not drift apart.
    state = CustomerState("c1", first * DAY_MS)
    state.last_interaction_ms = None if interaction is None else interaction * DAY_MS
    state.last_purchase_ms = None if purchase is None else purchase * DAY_MS
    state.window_spend_minor = spend
    at_ms = at * DAY_MS + (at % 3 - 1)  # around the boundaries, a millisecond either side
    reevaluate_into([], state, at_ms, DEFAULT_POLICY, None)
    assert (state.status, state.tier) == (status_for(state, at_ms, DEFAULT_POLICY), tier_for(spend, DEFAULT_POLICY))
