"""Hypothesis properties of the fold over random histories (STYLE rule 6)."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.effects import LedgerEntryMade, Outcome
from projections.customer import DEFAULT_POLICY, pass_time, evolve
from projections.partition import MemoryStore, PartitionFold
from projections.state import CustomerState
from projections.timeline import status_for, tier_for
from projections.value import rfm_at
from projections.documents import Totals
from schemas.events import EventBase
from schemas.policy import Policy, StatusPolicy
from schemas.timeutil import DAY_MS
from schemas.validate import Rejection, validate_document
from tests.support.invariants import check_effect, check_points, check_running_balances

DETERMINISTIC = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
CUSTOMER_WEIGHTS = ("c1", "c1", "c1", "c1", "c2", "c3")  # c1 gets enough events to be pruned
OFFSETS = (timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))
STEP_MINUTES = (0, 1, 60, 12 * 60, 24 * 60, 6 * 24 * 60, 7 * 24 * 60, 8 * 24 * 60, 29 * 24 * 60, 31 * 24 * 60,
                91 * 24 * 60, 181 * 24 * 60)  # 6 to 8 days: around the edge of the default event_id_days (7)
LATE_MINUTES = (30, 24 * 60, 41 * 24 * 60, 200 * 24 * 60, 370 * 24 * 60)
ORDER_IDS = ("o1", "o2", "o3", "o4", "o5")
TIMEZONES = (None, "Asia/Shanghai", "America/New_York", "Europe/London", "Pacific/Kiritimati")
BIRTHDAYS = (None, "02-29", "1990-01-01", "12-31", "06-15", "1988-02-29")
RETENTION_MS = DEFAULT_POLICY.retention.event_id_days * DAY_MS  # ids older than this are forgotten
HORIZON_MIN = 2 * 365 * 24 * 60

amounts = st.tuples(st.one_of(st.integers(1, 300_000), st.sampled_from([99_999, 100_000, 499_999, 500_000])),
                    st.booleans()).map(lambda m: f"{m[0] // 100}.{m[0] % 100:02d}" if m[1] else m[0] / 100)
payloads = {
    "customer.registered": st.fixed_dictionaries({}, optional={"birthday": st.sampled_from(BIRTHDAYS),
                                                               "timezone": st.sampled_from(TIMEZONES)}),
    "customer.profile_updated": st.fixed_dictionaries({}, optional={"birthday": st.sampled_from(BIRTHDAYS),
                                                                    "timezone": st.sampled_from(TIMEZONES)}),
    "order.paid": st.fixed_dictionaries({"order_id": st.sampled_from(ORDER_IDS), "amount": amounts}),
    "order.refunded": st.fixed_dictionaries({"order_id": st.sampled_from(ORDER_IDS), "amount": amounts}),
    "redemption.requested": st.fixed_dictionaries({"redemption_id": st.sampled_from(("r1", "r2", "r3", "r4")),
                                                   "points": st.integers(1, 3000)}),
    "customer.checked_in": st.just({}),
    "content.shared": st.fixed_dictionaries({}, optional={"channel": st.just("wechat")}),
    "review.posted": st.fixed_dictionaries({"order_id": st.sampled_from(ORDER_IDS), "rating": st.integers(1, 5)}),
    "customer.visited": st.just({}),
    "points.adjusted": st.fixed_dictionaries({"points": st.integers(-3000, 3000), "reason": st.just("ops")}),
    "customer.erased": st.just({}),
}
WEIGHTED_TYPES = (["order.paid"] * 4 + ["order.refunded"] * 2 + ["redemption.requested"] * 2
                  + ["customer.checked_in"] * 2 + ["content.shared"] * 2 + list(payloads) + ["clock.tick"] * 3)


def rfc3339(minutes: int, offset: timezone) -> str:
    return (T0 + timedelta(minutes=minutes)).astimezone(offset).isoformat()


def validated(document: dict) -> EventBase:
    event = validate_document(document)
    assert not isinstance(event, Rejection), (event, document)
    return event


_ONE_IN_10 = st.integers(0, 9)
_STEP = st.tuples(st.sampled_from(STEP_MINUTES), st.integers(0, 5), st.sampled_from(LATE_MINUTES),
                  st.sampled_from(OFFSETS), st.sampled_from(WEIGHTED_TYPES), st.sampled_from(CUSTOMER_WEIGHTS))


@st.composite
def histories(draw) -> list[EventBase]:
    """A log of valid events: ticks, late events and repeated event ids, over about two years."""
    log: list[EventBase] = []
    clock_min = 0
    for index in range(draw(st.integers(1, 70))):
        # A redelivery of an earlier record, from within the retention window (older ids are forgotten).
        recent = [e for e in log if e.occurred_at_ms > T0_MS + clock_min * 60_000 - RETENTION_MS]
        if recent and draw(_ONE_IN_10) == 0:
            log.append(recent[draw(st.integers(0, len(recent) - 1))])
            continue
        step_min, late_roll, late_min, offset, event_type, customer = draw(_STEP)
        clock_min = min(clock_min + step_min, HORIZON_MIN)
        at = rfc3339(clock_min - (late_min if late_roll == 0 else 0), offset)
        if event_type == "clock.tick":
            customer, payload = None, {}
        else:
            payload = draw(payloads[event_type])
        log.append(validated({"event_id": f"h{index}", "event_type": event_type, "customer_id": customer,
                              "occurred_at": at, "payload": payload}))
    return log


def fold(log: list[EventBase], policy: Policy = DEFAULT_POLICY) -> tuple[MemoryStore, list]:
    """Fold a log in a fresh partition; return the store and every (outcome, effects) in order."""
    store = MemoryStore()
    partition = PartitionFold(store, policy)
    return store, [partition.apply(event) for event in log]


def snapshot(store: MemoryStore) -> dict[str, tuple[CustomerState, dict]]:
    return {cid: (state, copy.deepcopy(state.to_dict())) for cid, state in store.items()}


@DETERMINISTIC
@given(histories())
def test_every_step_keeps_the_points_invariants(log):
    store = MemoryStore()
    partition = PartitionFold(store)
    ledger_sum: dict[str, int] = {}
    applied: set[tuple[str, str]] = set()
    for event in log:
        repeated = event.customer_id is not None and (event.customer_id, event.event_id) in applied
        before = snapshot(store) if repeated else {}
        outcome, effects = partition.apply(event)  # a valid event never raises
        for effect in effects:
            check_effect(effect)
        check_running_balances((e.record for e in effects if isinstance(e, LedgerEntryMade)), ledger_sum)
        if repeated:
            assert (outcome, effects) == (Outcome.DUPLICATE, [])
            assert {cid: s.to_dict() for cid, s in store.items()} == {cid: d for cid, (_, d) in before.items()}
        if event.customer_id is not None:
            applied.add((event.customer_id, event.event_id))
        for cid, state in store.items():
            check_points(state, ledger_sum.get(cid, 0))
            window_ms = 365 * DAY_MS  # the incrementally kept trailing spend equals a full recount
            assert state.window_spend_minor == sum(order.paid_minor - order.refunded_minor
                                                   for order in state.orders.values()
                                                   if state.as_of_ms < order.paid_at_ms + window_ms)
    for state in store.values():
        assert CustomerState.from_bytes(state.to_bytes()) == state


@DETERMINISTIC
@given(histories())
def test_a_fold_is_deterministic_and_redelivering_any_applied_event_changes_nothing(log):
    first_store, first_results = fold(log)
    second_store, second_results = fold(log)
    assert first_results == second_results
    assert {c: s.to_dict() for c, s in first_store.items()} == {c: s.to_dict() for c, s in second_store.items()}

    partition = PartitionFold(first_store)
    partition.clock_ms = max(event.occurred_at_ms for event in log)
    partition.load(first_store.values())
    before = {cid: state.to_dict() for cid, state in first_store.items()}
    events_applied = sum(state.events_applied for state in first_store.values())
    assert events_applied == len({(e.customer_id, e.event_id) for e in log if e.customer_id is not None})
    for event in log:
        if event.occurred_at_ms <= partition.clock_ms - RETENTION_MS:  # clock >= occurred_at + window
            continue  # forgotten on purpose: per-customer memory is bounded by policy.retention
        outcome, effects = partition.apply(event)
        assert effects == []
        assert outcome is (Outcome.TICK if event.customer_id is None else Outcome.DUPLICATE)
    assert {cid: state.to_dict() for cid, state in first_store.items()} == before


@DETERMINISTIC
@given(histories())
def test_pure_evolve_never_changes_its_input_and_agrees_with_the_in_place_fold(log):
    states: dict[str, CustomerState] = {}
    clock_ms = 0
    for event in log:
        if event.occurred_at_ms > clock_ms:
            clock_ms = event.occurred_at_ms
            for cid, state in list(states.items()):
                before = copy.deepcopy(state.to_dict())
                states[cid], _ = pass_time(state, clock_ms)
                assert state.to_dict() == before, "pass_time changed its input"
        if event.customer_id is None:
            continue
        state = states.get(event.customer_id)
        before = copy.deepcopy(state.to_dict()) if state is not None else None
        states[event.customer_id], _ = evolve(state, event, clock_ms)
        if state is not None:
            assert state.to_dict() == before, "evolve changed its input"
    store, _ = fold(log)
    assert {cid: s.to_dict() for cid, s in states.items()} == {cid: s.to_dict() for cid, s in store.items()}


@DETERMINISTIC
@given(histories())
def test_the_folds_totals_and_segments_are_those_of_its_states(log):
    # The fold moves each customer's contribution field by field (projections/partition.py _shift); recounting
    # the states from scratch must give the same counts, points outstanding and segments.
    partition = PartitionFold(MemoryStore())
    for event in log:
        partition.apply(event)
    states = list(partition.store.values())
    assert partition.totals.to_dict() == Totals.of(states).to_dict()
    expected: dict[str, set[str]] = {}
    for state in states:
        for name in (state.status, state.tier, state.value):
            expected.setdefault(name, set()).add(state.customer_id)
    assert {name: ids for name, ids in partition.segments.items() if ids} == expected


# A short purchase window ends before the interaction window; the default's ends after it.
SHORT_WINDOWS = Policy(status=StatusPolicy(purchase_window_days=7, active_interaction_days=30, dormant_after_days=45))


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, SHORT_WINDOWS], ids=["default", "short-windows"])
@DETERMINISTIC
@given(log=histories())
def test_no_time_rule_changes_a_customer_before_its_next_due_time(policy, log):
    # The fold visits a quiet customer only at next_due_ms, so a rule left out of it would be a missed change;
    # what it leaves out on purpose (the window ends of a customer who is not active) must change nothing.
    # Status, tier and R, F and M only move one way as time passes, so the last moment before it decides.
    store, _ = fold(log, policy)
    window_ms = policy.tier.window_days * DAY_MS
    for state in store.values():
        until_ms = state.next_due_ms if state.next_due_ms is not None else state.as_of_ms + 3 * 365 * DAY_MS
        at_ms = until_ms - 1
        if at_ms < state.as_of_ms:
            continue  # due at once
        kept = [order for order in state.orders.values()
                if at_ms < order.paid_at_ms + window_ms and order.paid_minor > order.refunded_minor]
        spend = sum(order.paid_minor - order.refunded_minor for order in kept)
        assert status_for(state, at_ms, policy) == state.status
        assert tier_for(spend, policy) == state.tier
        assert rfm_at(state.last_purchase_ms, len(kept), spend, at_ms, policy) == state.rfm
        assert not state.lots or state.lots[0].expires_at_ms > at_ms
