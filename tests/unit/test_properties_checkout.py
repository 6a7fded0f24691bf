"""Hypothesis properties of holds, captures, releases and pending points over interleaved commands."""
from __future__ import annotations

from datetime import timezone

from hypothesis import given
from hypothesis import strategies as st

from projections.effects import CheckoutUpdated, LedgerEntryMade, Outcome
from projections.checkout import available_points
from projections.customer import evolve, pass_time
from projections.partition import MemoryStore, PartitionFold
from schemas.policy import Policy
from tests.support.invariants import check_effect, check_points, check_running_balances
from tests.unit.test_properties import DETERMINISTIC, rfc3339, validated

POLICIES = (Policy(), Policy.model_validate({"earn": {"pending_days": 14}}))
HOLD_IDS = ("h1", "h2", "h3")
ORDER_IDS = ("o1", "o2", "o3")
COMMANDS = ("hold.requested", "hold.captured", "hold.released", "redemption.requested")
PAYLOADS = {
    "order.paid": st.fixed_dictionaries({"order_id": st.sampled_from(ORDER_IDS), "amount": st.integers(1, 2000)}),
    "order.refunded": st.fixed_dictionaries({"order_id": st.sampled_from(ORDER_IDS), "amount": st.integers(1, 2000)}),
    "points.adjusted": st.fixed_dictionaries({"points": st.integers(-800, 800), "reason": st.just("ops")}),
    "hold.requested": st.fixed_dictionaries({"hold_id": st.sampled_from(HOLD_IDS), "points": st.integers(1, 900),
                                             "expires_in": st.sampled_from((300, 3600, 86_400 * 3))}),
    "hold.captured": st.fixed_dictionaries({"hold_id": st.sampled_from(HOLD_IDS)},
                                           optional={"points": st.integers(1, 900)}),
    "hold.released": st.fixed_dictionaries({"hold_id": st.sampled_from(HOLD_IDS)}),
    "redemption.requested": st.fixed_dictionaries({"redemption_id": st.sampled_from(("r1", "r2", "r3")),
                                                   "points": st.integers(1, 900)}),
    "clock.tick": st.just({}),
}
TYPES = ("order.paid", "order.paid", "order.refunded", "points.adjusted", *COMMANDS, *COMMANDS, "clock.tick")
STEP_MINUTES = (0, 1, 1, 5, 5, 30, 61, 24 * 60, 15 * 24 * 60)  # mostly minutes: holds live for a checkout


@st.composite
def checkout_logs(draw) -> list:
    """One or two customers' orders, refunds and interleaved checkout commands, with repeated records.

    A capture or release names a hold requested before (or, one time in five, one never requested); one
    order in three names a hold requested before, which it captures if still open.
    """
    log, clock_min, holds = [], 0, []
    for index in range(draw(st.integers(1, 50))):
        if log and draw(st.integers(0, 9)) == 0:
            log.append(log[draw(st.integers(0, len(log) - 1))])  # a producer's resend, or Kafka's redelivery
            continue
        clock_min += draw(st.sampled_from(STEP_MINUTES))
        event_type = draw(st.sampled_from(TYPES))
        customer = None if event_type == "clock.tick" else draw(st.sampled_from(("c1", "c1", "c2")))
        payload = draw(PAYLOADS[event_type])
        if event_type == "hold.requested":
            payload["hold_id"] = f"h{index}"
            holds.append((customer, payload["hold_id"]))
        elif event_type in ("hold.captured", "hold.released") and holds and draw(st.integers(0, 4)):
            customer, payload["hold_id"] = draw(st.sampled_from(holds))
        elif event_type == "order.paid" and holds and draw(st.integers(0, 2)) == 0:  # an order capturing a hold
            customer, payload["hold_id"] = draw(st.sampled_from(holds))
        log.append(validated({"event_id": f"k{index}", "event_type": event_type, "customer_id": customer,
                              "occurred_at": rfc3339(clock_min, timezone.utc), "payload": payload}))
    return log


def _accepted_command(effects: list) -> bool:
    """Tell whether the effects are those of a command that spent or reserved points."""
    return any(isinstance(e, LedgerEntryMade) and e.kind == "redeem" or
               isinstance(e, CheckoutUpdated) and e.record["kind"] == "hold_placed" for e in effects)


@DETERMINISTIC
@given(log=checkout_logs(), policy=st.sampled_from(POLICIES))
def test_balance_is_the_ledger_and_an_accepted_command_never_overspends(log, policy):
    partition = PartitionFold(MemoryStore(), policy)
    sums: dict[str, int] = {}
    for event in log:
        effects = partition.apply(event)[1]
        for effect in effects:
            check_effect(effect)
        check_running_balances((e.record for e in effects if isinstance(e, LedgerEntryMade)), sums)
        for cid, state in partition.store.items():
            check_points(state, sums.get(cid, 0))  # with held = open holds, pending = pending points
        if event.customer_id is not None and _accepted_command(effects):
            assert available_points(partition.store[event.customer_id]) >= 0, event


@DETERMINISTIC
@given(log=checkout_logs(), policy=st.sampled_from(POLICIES))
def test_replaying_twice_gives_the_same_states_and_outputs_and_redelivery_changes_nothing(log, policy):
    def fold(records):
        partition = PartitionFold(MemoryStore(), policy)
        results = [partition.apply(event, offset) for offset, event in enumerate(records)]
        return partition, results
    first, first_results = fold(log)
    second, second_results = fold(log)
    assert first_results == second_results
    states = {cid: s.to_dict() for cid, s in first.store.items()}
    assert states == {cid: s.to_dict() for cid, s in second.store.items()}
    for offset, event in enumerate(log):  # the same records again, as after a crash before the commit
        assert first.apply(event, offset)[0] in (Outcome.REDELIVERED, Outcome.TICK)
    assert {cid: s.to_dict() for cid, s in first.store.items()} == states


@DETERMINISTIC
@given(log=checkout_logs(), policy=st.sampled_from(POLICIES))
def test_pure_evolve_agrees_with_the_fold_over_checkout_commands(log, policy):
    partition = PartitionFold(MemoryStore(), policy)
    states: dict = {}
    clock_ms = 0
    for event in log:
        partition.apply(event)
        if event.occurred_at_ms > clock_ms:  # time passes for every customer, as the due index makes it
            clock_ms = event.occurred_at_ms
            states = {cid: pass_time(state, clock_ms, policy)[0] for cid, state in states.items()}
        if event.customer_id is not None:
            states[event.customer_id] = evolve(states.get(event.customer_id), event, clock_ms, policy)[0]
    assert {cid: s.to_dict() for cid, s in states.items()} == \
        {cid: s.to_dict() for cid, s in partition.store.items()}


@DETERMINISTIC
@given(balance=st.integers(1, 1000), held=st.integers(1, 1000), other=st.integers(0, 1000),
       drop=st.integers(0, 1000), captured=st.one_of(st.none(), st.integers(1, 1000)))
def test_a_capture_is_accepted_exactly_when_the_hold_covers_it_and_the_points_are_still_there(
        balance, held, other, drop, captured):
    at = lambda minute: rfc3339(minute, timezone.utc)  # noqa: E731
    log = [{"event_type": "points.adjusted", "payload": {"points": balance, "reason": "seed"}},
           {"event_type": "hold.requested", "payload": {"hold_id": "h1", "points": held, "expires_in": 3600}},
           {"event_type": "hold.requested", "payload": {"hold_id": "h2", "points": other or 1, "expires_in": 3600}},
           {"event_type": "points.adjusted", "payload": {"points": -drop or 1, "reason": "fix"}},
           {"event_type": "hold.captured", "payload": {"hold_id": "h1", **({"points": captured} if captured else {})}}]
    partition = PartitionFold(MemoryStore())
    for minute, doc in enumerate(log):
        partition.apply(validated({**doc, "event_id": f"k{minute}", "customer_id": "c1", "occurred_at": at(minute)}))
    state = partition.store["c1"]
    placed = [key for key in ("hold:h1", "hold:h2") if state.commands[key][2] == "accepted"]
    points = held if captured is None else captured
    spendable = balance + (drop and -drop or 1) - (other or 1) * ("hold:h2" in placed)
    expected = "hold:h1" in placed and points <= held and points <= spendable
    assert (state.commands["capture:h1"][2] == "accepted") == expected
    assert available_points(state) >= 0 or not expected
