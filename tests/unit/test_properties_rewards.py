"""Hypothesis properties of rewards and care campaigns over random histories with claims and coupon uses.

- points taken by claims = the sum of the claims' ledger entries (and refunds on expiry likewise);
- a coupon is used at most once, never after it expired, and only after it was issued;
- replaying a log twice, or from states saved and restored half-way, gives identical coupons and triggers;
- pruning after every event or never gives the same outcomes (retention is a rule of the clock).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import projections.customer
from projections.effects import CampaignTriggered, CouponChanged, LedgerEntryMade, Output, RequestRefused
from projections.partition import MemoryStore, PartitionFold, SavedStateStore
from projections.state import CustomerState
from projections.documents import customer_view
from schemas.events import EventBase
from schemas.policy import Policy
from schemas.validate import Rejection, validate_document
from tests.support.invariants import check_effect
from tests.unit.test_properties import DETERMINISTIC

POLICY = Policy.model_validate({
    "rewards": {
        "mug": {"points": 300, "coupon_value": "20.00", "min_order": "50.00", "valid_days": 30},
        "tea": {"points": 120, "percent_off": 10, "valid_days": 7, "min_tier": "premium", "per_customer_per_year": 2,
                "refund_points_on_expiry": True},
        "pen": {"points": 40, "coupon_value": "5.00", "valid_days": 60, "refund_points_on_expiry": True},
    },
    "campaigns": {"member_day": {"monthly_day": 18}, "points_expiring": {"remind_days": 20, "min_points": 50},
                  "tier_upgrade_cooldown_days": 10},
    "retention": {"redemption_id_days": 120, "order_days": 400},  # claim ids and coupons forgotten within a history
})
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)
CUSTOMERS = ("c1", "c1", "c1", "c2", "c3")
CLAIMS = ("k1", "k2", "k3", "k4", "k5")
COUPONS = ("c1:k1", "c1:k2", "c1:k3", "c2:k1", "c2:k4", "c3:k5", "c1:nope")
ORDERS = ("o1", "o2", "o3")
STEP_MINUTES = (0, 1, 60, 60, 24 * 60, 24 * 60, 6 * 24 * 60, 8 * 24 * 60, 29 * 24 * 60, 31 * 24 * 60, 100 * 24 * 60)
TIMEZONES = ("Asia/Shanghai", "America/New_York", "Pacific/Kiritimati")
payloads = {
    "points.adjusted": st.fixed_dictionaries({"points": st.integers(-200, 1500), "reason": st.just("ops")}),
    "order.paid": st.fixed_dictionaries({"order_id": st.sampled_from(ORDERS),
                                         "amount": st.sampled_from(["49.99", "50.00", "120.00", "1500.00",
                                                                    "1500.00"])}),
    "order.refunded": st.fixed_dictionaries({"order_id": st.sampled_from(ORDERS),
                                             "amount": st.sampled_from(["10.00", "1500.00"])}),
    "redemption.requested": st.fixed_dictionaries({"redemption_id": st.sampled_from(("r1", "r2")),
                                                   "points": st.integers(1, 700)}),
    "reward.claimed": st.fixed_dictionaries({"claim_id": st.sampled_from(CLAIMS),
                                             "reward_id": st.sampled_from(("mug", "tea", "tea", "pen", "yacht"))}),
    # "{own}" becomes the customer's own coupon id of that claim: most uses are of coupons they may hold.
    "coupon.used": st.fixed_dictionaries(
        {"coupon_id": st.one_of(st.sampled_from(CLAIMS).map(lambda k: "{own}" + k), st.sampled_from(COUPONS)),
         "order_id": st.sampled_from(ORDERS)},
        optional={"amount": st.sampled_from(["10.00", "50.00", "99.00"])}),
    "customer.profile_updated": st.fixed_dictionaries({"timezone": st.sampled_from(TIMEZONES)}),
    "customer.checked_in": st.just({}),
}
TYPES = (["reward.claimed"] * 4 + ["coupon.used"] * 6 + ["points.adjusted"] * 2 + ["order.paid"] * 2
         + ["clock.tick"] * 3 + list(payloads))
_STEP = st.tuples(st.sampled_from(STEP_MINUTES), st.integers(0, 7), st.sampled_from(TYPES),
                  st.sampled_from(CUSTOMERS))


@st.composite
def histories(draw) -> list[EventBase]:
    """A log of claims, coupon uses, credits, orders, ticks, late events and redelivered records."""
    log: list[EventBase] = []
    claimed: dict[str, list[str]] = {}
    clock_min = 0
    for index in range(draw(st.integers(1, 60))):
        if log and draw(st.integers(0, 11)) == 0:
            log.append(log[draw(st.integers(0, len(log) - 1))])  # a redelivery
            continue
        step_min, late_roll, event_type, customer = draw(_STEP)
        clock_min += step_min
        at_min = clock_min - (draw(st.sampled_from((60, 5 * 24 * 60, 40 * 24 * 60))) if late_roll == 0 else 0)
        at = (T0 + timedelta(minutes=at_min)).isoformat()
        payload = {} if event_type == "clock.tick" else dict(draw(payloads[event_type]))
        if event_type == "reward.claimed":
            claimed.setdefault(customer, []).append(payload["claim_id"])
        if payload.get("coupon_id", "").startswith("{own}"):
            # mostly a coupon the customer claimed lately, else any of their claim ids
            recent = claimed.get(customer, [])[-2:]
            claim_id = draw(st.sampled_from(recent)) if recent and draw(st.booleans()) else payload["coupon_id"][5:]
            payload["coupon_id"] = f"{customer}:{claim_id}"
        event = validate_document({"event_id": f"h{index}", "event_type": event_type,
                                   "customer_id": None if event_type == "clock.tick" else customer,
                                   "occurred_at": at, "payload": payload})
        assert not isinstance(event, Rejection), event
        log.append(event)
    return log


def fold(log: list[EventBase], policy: Policy = POLICY) -> tuple[MemoryStore, list]:
    """Fold a log in a fresh partition; return the store and every effect in order."""
    store = MemoryStore()
    partition = PartitionFold(store, policy)
    effects = []
    for event in log:
        effects.extend(partition.apply(event)[1])
    return store, effects


def records(effects: list, kind: type) -> list[dict]:
    return [e.record for e in effects if isinstance(e, kind)]


@DETERMINISTIC
@given(histories())
def test_points_taken_by_claims_equal_the_sum_of_the_claims_ledger_entries(log):
    store, effects = fold(log)
    for effect in effects:
        check_effect(effect)
    taken: Counter = Counter()
    refunded: Counter = Counter()
    for record in records(effects, CouponChanged):
        if record["kind"] == "coupon_issued":
            assert record["points"] == POLICY.rewards[record["reward_id"]].points
            taken[record["customer_id"]] += record["points"]
        elif record["kind"] == "coupon_expired":
            refunded[record["customer_id"]] += record["points_refunded"]
    claim_entries: Counter = Counter()
    refund_entries: Counter = Counter()
    balance: Counter = Counter()
    for entry in records(effects, LedgerEntryMade):
        balance[entry["customer_id"]] += entry["points"]
        if entry["kind"] == "redeem" and entry.get("claim_id") is not None:
            claim_entries[entry["customer_id"]] -= entry["points"]
        if entry["kind"] == "coupon_refund":
            refund_entries[entry["customer_id"]] += entry["points"]
    assert claim_entries == taken
    assert refund_entries == refunded
    for customer_id, state in store.items():
        assert state.points_balance == balance[customer_id]


@DETERMINISTIC
@given(histories())
def test_a_coupon_is_used_at_most_once_and_only_while_open(log):
    store, effects = fold(log)
    history: dict[str, list[str]] = defaultdict(list)
    for record in records(effects, CouponChanged):
        history[record["coupon_id"]].append(record["kind"])
    lives: dict[str, list[list[str]]] = {}
    for coupon_id, kinds in history.items():
        # A claim_id may come again once it and its closed coupon are forgotten (redemption_id_days after), and
        # then issues a coupon of the same id again: each life is checked on its own.
        lives[coupon_id] = [["coupon_issued", *rest.split()] for rest in " ".join(kinds).split("coupon_issued")[1:]]
        assert " ".join(kinds).startswith("coupon_issued"), (coupon_id, kinds)
        for life in lives[coupon_id]:
            assert life in (["coupon_issued"], ["coupon_issued", "coupon_used"], ["coupon_issued", "coupon_expired"]), (
                coupon_id, kinds)
        assert all(life != ["coupon_issued"] for life in lives[coupon_id][:-1]), (coupon_id, kinds)
    last: dict[str, str] = {}  # coupon_id -> its latest record so far, in log order
    for effect in effects:
        record = effect.record if isinstance(effect, Output) else {}
        if isinstance(effect, CouponChanged):
            last[record["coupon_id"]] = effect.kind
        elif isinstance(effect, RequestRefused) and effect.kind == "coupon_rejected":
            expected = {"already_used": "coupon_used", "expired": "coupon_expired"}.get(record["reason"])
            if expected is not None:
                assert last.get(record["coupon_id"]) == expected, record
    for customer_id, state in store.items():
        open_ids = {c["coupon_id"] for c in customer_view(state)["coupons"]}
        assert open_ids == {cid for cid, customer_lives in lives.items()
                            if customer_lives[-1] == ["coupon_issued"] and cid.startswith(f"{customer_id}:")}


@DETERMINISTIC
@given(histories(), st.integers(0, 60))
def test_replaying_twice_or_from_restored_states_gives_identical_coupons_and_triggers(log, split):
    _, first = fold(log)
    _, second = fold(log)
    assert first == second
    # As a worker restarting half-way: states saved as bytes, the fold rebuilt from them (due index too).
    split = min(split, len(log))
    saved = SavedStateStore()
    partition = PartitionFold(saved, POLICY)
    resumed = []
    for event in log[:split]:
        resumed.extend(partition.apply(event)[1])
    saved.save()
    clock_ms = partition.clock_ms
    restored = SavedStateStore(dict(saved.saved))
    partition = PartitionFold(restored, POLICY, clock_ms)
    partition.load(CustomerState.from_bytes(raw) for raw in restored.saved.values())
    for event in log[split:]:
        resumed.extend(partition.apply(event)[1])
    for kind in (CouponChanged, CampaignTriggered, LedgerEntryMade, Output):
        assert records(resumed, kind) == records(first, kind), kind


@DETERMINISTIC
@given(histories())
def test_pruning_after_every_event_and_never_give_the_same_outcomes(log):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(projections.customer, "_PRUNE_EVERY_EVENTS", 1)
        store_pruned, pruned = fold(log)
        monkeypatch.setattr(projections.customer, "_PRUNE_EVERY_EVENTS", 10**9)
        store_kept, kept = fold(log)
    assert pruned == kept
    views_pruned = {c: customer_view(s) for c, s in store_pruned.items()}
    assert views_pruned == {c: customer_view(s) for c, s in store_kept.items()}


@DETERMINISTIC
@given(histories())
def test_each_trigger_id_is_sent_once_per_log(log):
    _, effects = fold(log)
    triggers = Counter(record["trigger_id"] for record in records(effects, CampaignTriggered))
    assert all(count == 1 for count in triggers.values()), triggers


# ---- expiry reminders against a brute-force reference -----------------------------------------------------

REMINDER_POLICY = Policy.model_validate({"campaigns": {"points_expiring": {"remind_days": 20, "min_points": 50},
                                                       "disabled": ["win_back", "tier_upgraded"]},
                                         "lots": {"expiry_days": 60}})


@st.composite
def credit_histories(draw) -> list[EventBase]:
    """One customer's credits, debits and ticks in time order (no late event), in one time zone."""
    zone = draw(st.sampled_from(TIMEZONES))
    log = [validate_document({"event_id": "reg", "event_type": "customer.registered", "customer_id": "c1",
                              "occurred_at": T0.isoformat(), "payload": {"timezone": zone}})]
    minutes = 0
    for index in range(draw(st.integers(1, 40))):
        minutes += draw(st.sampled_from((30, 7 * 60, 20 * 60, 26 * 60, 3 * 24 * 60, 15 * 24 * 60)))
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        kind = draw(st.sampled_from(("credit", "credit", "credit", "debit", "tick")))
        if kind == "tick":
            document = {"event_type": "clock.tick", "customer_id": None, "payload": {}}
        else:
            points = draw(st.sampled_from((5, 20, 30, 49, 50, 80)))
            document = {"event_type": "points.adjusted", "customer_id": "c1",
                        "payload": {"points": points if kind == "credit" else -points, "reason": "ops"}}
        log.append(validate_document({**document, "event_id": f"p{index}", "occurred_at": at}))
    for step_days in draw(st.lists(st.sampled_from((1, 10, 45)), max_size=3)):  # time passes at the end
        minutes += step_days * 24 * 60
        log.append(validate_document({"event_id": f"t{minutes}", "event_type": "clock.tick", "customer_id": None,
                                      "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat()}))
    return log


def reference_reminders(log: list[EventBase], policy: Policy) -> set[tuple[str, str, int]]:
    """Fold the reminders the slow way: at every clock move, check every held date whose reminder time passed."""
    from datetime import timedelta as days_delta

    from schemas.timeutil import DAY_MS, format_ms, local_date, local_midnight_ms
    rules = policy.campaigns.points_expiring
    zone = log[0].payload.timezone
    lots: list[list[int]] = []   # [expires_ms, points], oldest first
    debt = 0
    checked: set = set()
    fired = set()
    clock = log[0].occurred_at_ms
    for event in log[1:]:
        target = max(clock, event.occurred_at_ms)
        while True:  # the reminders falling due in (clock, target], earliest first, each date once
            dates = sorted({local_date(expires, zone) for expires, _ in lots} - checked)
            due = [(local_midnight_ms(d - days_delta(days=rules.remind_days), zone), d) for d in dates]
            due = [(at, d) for at, d in due if at <= target]
            if not due:
                break
            at, day = min(due)
            lots = [lot for lot in lots if lot[0] > at]  # lots expire at their time
            checked.update(d for d in dates if d <= day)
            on_day = [lot for lot in lots if local_date(lot[0], zone) == day]
            points = sum(p for _, p in on_day)
            if points >= rules.min_points and target < min(e for e, _ in on_day):
                fired.add((f"points_expiring:c1:{day.isoformat()}", format_ms(max(at, clock)), points))
        clock = target
        lots = [lot for lot in lots if lot[0] > clock]
        if event.customer_id is None:
            continue
        points = event.payload.points
        if points > 0:
            repaid = min(debt, points)
            debt -= repaid
            if points - repaid:
                lots.append([event.occurred_at_ms + policy.lots.expiry_days * DAY_MS, points - repaid])
        else:
            remaining = -points
            while remaining and lots:
                taken = min(lots[0][1], remaining)
                lots[0][1] -= taken
                remaining -= taken
                if not lots[0][1]:
                    lots.pop(0)
            debt += remaining
    return fired


@DETERMINISTIC
@given(credit_histories())
def test_expiry_reminders_agree_with_a_brute_force_reference(log):
    _, effects = fold(log, REMINDER_POLICY)
    reminders = {(r["trigger_id"], r["at"], r["details"]["points"]) for r in records(effects, CampaignTriggered)
                 if r["campaign"] == "points_expiring"}
    assert reminders == reference_reminders(log, REMINDER_POLICY)
