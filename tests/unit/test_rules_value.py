"""docs/rules.md, customer value: R, F and M scores, the value class, and how they change with events and time."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given as h_given, settings, strategies as st

from projections.effects import BecameDormant
from projections.customer import DEFAULT_POLICY
from projections.partition import PartitionFold, SavedStateStore
from projections.state import CustomerState, Rfm
from projections.timeline import _rescore
from projections.value import recency_due_ms, rfm_at
from projections.documents import customer_view
from schemas.policy import Policy, PolicyError, RfmPolicy, ValuePolicy, load_policy
from schemas.timeutil import DAY_MS, parse_rfc3339_ms
from tests.support.events import day, doc, ev, paid, refund, tick
from tests.support.scenario import given
from tools.replay import LogRecord, fold_log

MS = 1 / 3600_000  # one millisecond in hours
T0_UTC = "2026-01-01T02:00:00Z"  # tests.support.events.T0 (10:00 +08:00) in UTC; day(n) is n days later


def small_orders(count: int, at: str = day(0)):
    """`count` orders of 0.01 each (they count for F and hardly for M)."""
    return [paid(f"s{n}", "0.01", at) for n in range(count)]


def values(s):
    return [(u["from"], u["to"], u["at"]) for u in s.updates(kind="value_changed")]


HIGH = [paid("o1", "5000.00"), *small_orders(5)]  # day 0: F 4 (6 orders), M 4 (5000.05), R 5 -> high


# Without a purchase


def test_a_customer_without_a_purchase_has_no_rfm_and_no_value():
    s = given().when(ev("customer.registered"), ev("customer.checked_in", day(1)), tick(day(400)))
    s.then(rfm=None, value="none")
    assert values(s) == []
    view = customer_view(s.state())
    assert (view["rfm"], view["value"]) == (None, "none")


def test_the_first_purchase_gives_scores_and_a_value_change_from_none():
    event = paid("o1", "100.00", day(0))
    s = given(ev("customer.registered")).when(event)
    s.then(rfm=Rfm(5, 1, 1), value="medium")  # R 5 (0 days), F 1 (one order), M 1 (100.00 < 300.00)
    assert s.updates(kind="value_changed") == [{
        "customer_id": "c1", "kind": "value_changed", "from": "none", "to": "medium", "at": T0_UTC,
        "source_event_id": event.event_id}]
    assert customer_view(s.state())["rfm"] == {"r": 5, "f": 1, "m": 1}


# R: whole days since the last purchase, a time rule on the due index


@pytest.mark.parametrize("whole_days, r", [(0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (180, 3), (181, 2),
                                           (365, 2), (366, 1), (1000, 1)])
def test_recency_scores_whole_days_since_the_last_purchase(whole_days, r):
    s = given(paid("o1")).when(tick(day(whole_days + 1, hours=-MS)))  # the last instant of that whole day
    assert s.state().rfm.r == r


@pytest.mark.parametrize("days, r_before, r_after", [(31, 5, 4), (91, 4, 3), (181, 3, 2), (366, 2, 1)])
def test_recency_falls_at_the_first_instant_of_the_next_whole_day(days, r_before, r_after):
    s = given(paid("o1")).when(tick(day(days, hours=-MS)))
    assert s.state().rfm.r == r_before
    s.when(tick(day(days)))
    assert s.state().rfm.r == r_after
    # the due index visited the customer at that instant: the state is brought up to the tick
    assert s.state().as_of_ms == s.fold.clock_ms == parse_rfc3339_ms(day(days))


def test_recency_is_measured_from_the_latest_purchase_and_a_late_older_one_does_not_move_it():
    s = given(paid("o1"), tick(day(100)))
    s.then(rfm=Rfm(3, 1, 1))  # 100 whole days: R 3; one order: F 1; 100.00: M 1
    s.when(paid("o2", at=day(50)))  # late, but later than o1: 100 - 50 = 50 days -> R 4; F 2; 200.00 -> M 1
    s.then(rfm=Rfm(4, 2, 1))
    s.when(paid("o3", at=day(10)))  # late and older than o2: R stays 4; F 3; 300.00 -> M 2
    s.then(rfm=Rfm(4, 3, 2))


def test_events_that_are_not_purchases_do_not_change_recency():
    s = given(paid("o1")).when(ev("customer.visited", day(40)), ev("customer.checked_in", day(41)))
    s.then(rfm=Rfm(4, 1, 1))  # 41 whole days since the purchase


# F: paid orders not fully refunded in the tier window; M: net spend in the tier window


@pytest.mark.parametrize("count, f", [(1, 1), (2, 2), (3, 3), (5, 3), (6, 4), (11, 4), (12, 5), (20, 5)])
def test_frequency_thresholds(count, f):
    s = given().when(*small_orders(count))
    assert s.state().rfm.f == f


@pytest.mark.parametrize("amount, m", [("299.99", 1), ("300.00", 2), ("999.99", 2), ("1000.00", 3), ("4999.99", 3),
                                       ("5000.00", 4), ("9999.99", 4), ("10000.00", 5), ("50000", 5)])
def test_monetary_thresholds(amount, m):
    s = given().when(paid("o1", amount))
    assert s.state().rfm.m == m


def test_a_full_refund_takes_the_order_out_of_frequency_and_every_refund_lowers_monetary():
    s = given(paid("o1", "200.00"), paid("o2", "200.00")).then(rfm=Rfm(5, 2, 2), window_orders=2)  # 400.00 -> M 2
    s.when(refund("o1", "100.00"))  # partial: o1 still counts; 300.00 -> M 2
    s.then(rfm=Rfm(5, 2, 2), window_orders=2, window_spend_minor=30_000)
    s.when(refund("o1", "150.00"))  # capped at the paid 200.00: o1 fully refunded -> F 1; 200.00 -> M 1
    s.then(rfm=Rfm(5, 1, 1), window_orders=1, window_spend_minor=20_000)
    s.when(refund("o1", "1.00"))  # nothing left to refund: no change
    s.then(window_orders=1)


def test_a_refund_of_an_unknown_order_changes_no_score():
    s = given(paid("o1", "300.00")).when(refund("nope", "100.00"))
    s.then(rfm=Rfm(5, 1, 2), window_orders=1)


def test_orders_leave_frequency_and_monetary_with_the_tier_window():
    s = given(paid("o1", "300.00"), paid("o2", "300.00", day(10))).then(rfm=Rfm(5, 2, 2))  # 2 orders, 600.00
    s.when(tick(day(365, hours=-MS)))
    s.then(rfm=Rfm(2, 2, 2))  # 354 whole days since day 10: R 2; both orders still in the window
    s.when(tick(day(365)))
    s.then(rfm=Rfm(2, 1, 2), window_orders=1)  # o1 left the window at day 365 exactly: 1 order, 300.00
    s.when(tick(day(375)))
    s.then(rfm=Rfm(2, 1, 1), window_orders=0)  # o2 left at day 375; 365 whole days since it: R still 2
    s.when(tick(day(376)))
    s.then(rfm=Rfm(1, 1, 1), value="low")


def test_a_late_order_older_than_the_window_counts_for_neither_frequency_nor_monetary():
    s = given(tick(day(400))).when(paid("o1", "20000.00", day(10)))
    s.then(rfm=Rfm(1, 1, 1), window_orders=0, value="low")  # 390 whole days ago, outside the 365-day window


# The value class


@pytest.mark.parametrize("events, rfm, value", [
    (HIGH, Rfm(5, 4, 4), "high"),                                        # R >= 4 and F + M = 8
    ([paid("o1", "4999.90"), *small_orders(5)], Rfm(5, 4, 3), "medium"),  # 4999.95: M 3, F + M = 7
    ([paid("o1", "100.00"), tick(day(181))], Rfm(2, 1, 1), "low"),       # R <= 2
    ([paid("o1", "20000.00"), *small_orders(11), tick(day(181))], Rfm(2, 5, 5), "low"),  # low despite F and M
    ([paid("o1", "20000.00"), *small_orders(11), tick(day(91))], Rfm(3, 5, 5), "medium"),  # R 3: never high
])
def test_value_classes(events, rfm, value):
    given(*events).then(rfm=rfm, value=value)


def test_value_falls_with_time_each_change_at_its_own_time_on_one_clock_jump():
    tick_event = tick(day(500))
    s = given(*HIGH).when(tick_event)
    # R 5 -> 4 at day 31 keeps high (4 + 4 >= 8); R 3 at day 91 (2026-04-02): medium; R 2 at day 181
    # (2026-07-01): low; F and M fall at day 365 and R to 1 at day 366: low already
    assert values(s) == [("high", "medium", "2026-04-02T02:00:00Z"), ("medium", "low", "2026-07-01T02:00:00Z")]
    assert {u["source_event_id"] for u in s.updates(kind="value_changed")} == {tick_event.event_id}
    s.then(rfm=Rfm(1, 1, 1), value="low")


def test_value_changes_come_out_in_time_order_with_the_status_changes():
    s = given(*HIGH).when(tick(day(500)))
    kinds = [(u["kind"], u["to"], u["at"][:10]) for u in s.updates() if u["kind"] != "tier_changed"]
    assert kinds == [("status_changed", "potential", "2026-01-31"), ("value_changed", "medium", "2026-04-02"),
                     ("status_changed", "dormant", "2026-06-30"), ("value_changed", "low", "2026-07-01")]


def test_a_new_purchase_lifts_the_value_at_once():
    s = given(*HIGH, tick(day(200))).then(value="low")
    s.when(paid("o9", "10.00", day(200)))  # R 5; F 4 (7 orders), M 4 (5000.05 + 10.00): high again
    assert values(s) == [("low", "high", "2026-07-20T02:00:00Z")]


def test_becoming_dormant_notes_the_tier_and_value_held_just_before_for_the_churn_metric():
    s = given(*HIGH).when(tick(day(180)))
    # at day 180: vip (5000.05 in the window), medium (R 3 since day 91); dormant 180 days after day 0
    assert s.notices() == [BecameDormant("vip", "medium", s.effects[0].record["source_event_id"])]
    s.when(tick(day(400)))
    assert s.notices() == []  # staying dormant is no new churn


# Policy: every threshold and the class rule can be set


def test_the_thresholds_and_the_class_rule_come_from_the_policy():
    policy = Policy.model_validate({
        "rfm": {"recency_days": [7, 14, 21, 28], "frequency_orders": [4, 3, 2, 1],
                "monetary_min": ["400.00", "300.00", "200.00", "100.00"]},
        "value": {"high_min_r": 5, "high_min_f_plus_m": 6, "low_max_r": 3}})
    s = given(paid("o1", "300.00"), paid("o2", "0.01"), policy=policy)
    s.then(rfm=Rfm(5, 3, 4), value="high")  # 2 orders -> F 3; 300.01 -> M 4; 3 + 4 >= 6 and R 5
    s.when(tick(day(8)))
    s.then(rfm=Rfm(4, 3, 4), value="medium")  # 8 whole days > 7: R 4, not high, not low (R > 3)
    s.when(tick(day(15)))
    s.then(rfm=Rfm(3, 3, 4), value="low")


def test_high_is_decided_before_low_when_the_rules_overlap():
    policy = Policy.model_validate({"value": {"high_min_r": 1, "high_min_f_plus_m": 2, "low_max_r": 5}})
    given(paid("o1"), policy=policy).then(value="high")  # F + M = 2 >= 2: high, although R 5 <= 5 too


def test_a_low_max_r_of_zero_never_makes_a_customer_low():
    policy = Policy.model_validate({"value": {"low_max_r": 0}})
    given(paid("o1"), tick(day(400)), policy=policy).then(rfm=Rfm(1, 1, 1), value="medium")


@pytest.mark.parametrize("section", [
    "[rfm]\nrecency_days = [30, 30, 180, 365]\n",          # not rising
    "[rfm]\nrecency_days = [30, 90, 180]\n",               # four thresholds
    "[rfm]\nfrequency_orders = [12, 6, 3, 0]\n",           # above 0
    "[rfm]\nmonetary_min = [\"300.00\", \"1000.00\", \"5000.00\", \"10000.00\"]\n",  # not falling
    "[rfm]\nmonetary_min = [\"10000.001\", \"5000.00\", \"1000.00\", \"300.00\"]\n",  # 2 decimals at most
    "[value]\nhigh_min_r = 6\n",
    "[value]\nhigh_cutoff = 3\n",                           # unknown key
])
def test_a_bad_rfm_or_value_section_is_refused(tmp_path, section):
    path = tmp_path / "loyalty.toml"
    path.write_text(section)
    with pytest.raises(PolicyError):
        load_policy(path)


# Segments, totals and replay


def test_the_fold_keeps_customers_by_value_class_as_segments_and_totals():
    s = given(*HIGH, ev("order.paid", customer="c2", order_id="o1", amount="10.00"),
              ev("customer.registered", customer="c3"))
    assert s.fold.segment(None, None, "high") == {"c1"}
    assert s.fold.segment("active", None, "medium") == {"c2"}
    assert s.fold.segment(None, "standard", "none") == {"c3"}
    assert s.fold.totals.by_value == {"high": 1, "medium": 1, "low": 0, "none": 1}
    s.when(tick(day(200)))
    assert s.fold.segment(None, None, "low") == {"c1", "c2"}
    assert s.fold.totals.by_value == {"high": 0, "medium": 0, "low": 2, "none": 1}


def test_a_rollback_restores_the_value_segments_and_totals():
    fold = PartitionFold(SavedStateStore())
    fold.begin_batch()
    for event in HIGH:
        fold.apply(event)
    fold.store.save()
    fold.begin_batch()
    fold.apply(tick(day(200)))
    assert fold.segment(None, None, "low") == {"c1"}
    fold.rollback()
    assert fold.segment(None, None, "high") == {"c1"} and fold.segment(None, None, "low") == set()
    assert fold.totals.by_value["high"] == 1 and fold.store.get("c1").value == "high"


def _records(*documents: dict) -> list[LogRecord]:
    return [LogRecord(0, offset, None, (d["customer_id"] or "").encode() or None, orjson.dumps(d))
            for offset, d in enumerate(documents)]


def test_replay_until_gives_the_rfm_as_of_that_time():
    log = _records(doc("order.paid", day(0), order_id="o1", amount="5000.00"),
                   *(doc("order.paid", day(0), order_id=f"s{n}", amount="0.01") for n in range(5)),
                   doc("clock.tick", day(300), customer=None))
    policy = Policy()
    for until, rfm, value in ((day(30), Rfm(5, 4, 4), "high"), (day(60), Rfm(4, 4, 4), "high"),
                              (day(100), Rfm(3, 4, 4), "medium"), (day(200), Rfm(2, 4, 4), "low")):
        result = fold_log(lambda partitions: log, policy, until_ms=parse_rfc3339_ms(until))
        state = result.states["c1"]
        assert (state.rfm, state.value) == (rfm, value), until
    whole = fold_log(lambda partitions: log, policy).states["c1"]
    assert (whole.rfm, whole.value) == (Rfm(2, 4, 4), "low")  # the tick of day 300: R 2, still in the window


def test_what_if_reports_value_classes_before_and_after():
    from tools.verify import what_if_report
    log = _records(doc("order.paid", day(0), order_id="o1", amount="5000.00"),
                   *(doc("order.paid", day(0), order_id=f"s{n}", amount="0.01") for n in range(5)),
                   doc("order.paid", day(0), customer="c2", order_id="o1", amount="10.00"),
                   doc("clock.tick", day(60), customer=None))
    current = fold_log(lambda partitions: log, Policy())
    # a stricter rule: high needs F + M >= 9, so c1 (F 4, M 4) is medium
    stricter = fold_log(lambda partitions: log, Policy.model_validate({"value": {"high_min_f_plus_m": 9}}))
    report = what_if_report(current, stricter)
    assert report["before"]["by_value"] == {"high": 1, "medium": 1, "low": 0, "none": 0}
    assert report["after"]["by_value"] == {"high": 0, "medium": 2, "low": 0, "none": 0}
    assert report["moves"] == {"value high -> medium": 1}
    assert report["sample"] == [{"customer_id": "c1", "changes": ["value high -> medium"]}]


def test_a_state_stored_before_customer_value_is_scored_at_the_next_clock():
    from projections.state import CustomerState, Rfm
    s = given(paid("o1", "300.00"), paid("o2", "800.00", day(5)), refund("o2", "100.00", day(6)), tick(day(10)))
    old = s.state().to_dict()
    for name in ("orders_12m", "rfm", "value", "rfm_due_ms", "birthday_fired_year"):
        del old[name]
    fold = PartitionFold(SavedStateStore({"c1": orjson.dumps(old)}))
    fold.load([fold.store.get("c1")])
    fold.begin_batch()
    assert fold.store.get("c1").value == "none"  # until the next clock
    _, effects = fold.apply(tick(day(11)))
    # recounted as of its stored as_of (day 10): 2 orders, 300.00 + 700.00 = 1000.00 -> F 2, M 3; R 5
    assert (fold.store.get("c1").rfm, fold.store.get("c1").value, fold.store.get("c1").window_orders) == (Rfm(5, 2, 3),
                                                                                                      "medium", 2)
    assert [e.record["to"] for e in effects if e.record.get("kind") == "value_changed"] == ["medium"]
    assert fold.segment(None, None, "medium") == {"c1"}


def test_the_policy_file_of_the_rules_lists_every_rfm_and_value_key_with_its_default():
    import re
    import tomllib
    from pathlib import Path
    rules = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    section = rules.split("\n## The policy file (`loyalty.toml`)\n", 1)[1]
    listed = tomllib.loads(re.search(r"```toml\n(.*?)```", section, re.S).group(1))
    assert set(listed["rfm"]) == set(RfmPolicy.model_fields) and set(listed["value"]) == set(ValuePolicy.model_fields)
    assert Policy.model_validate(listed) == Policy()


@settings(max_examples=300, deadline=None)
@h_given(st.one_of(st.none(), st.integers(0, 500)), st.integers(0, 900), st.integers(0, 20),
         st.integers(0, 1_500_000))
def test_the_folds_rescoring_agrees_with_rfm_at_and_recency_due_ms(purchase_day, at_day, orders, spend):
    # _rescore writes both out (it runs after every order and each time R falls); they must not drift apart.
    state = CustomerState("c1", 0)
    state.last_purchase_ms = None if purchase_day is None else purchase_day * DAY_MS
    state.window_orders, state.window_spend_minor = orders, spend
    at_ms = (purchase_day or 0) * DAY_MS + at_day * DAY_MS + (at_day % 3 - 1)  # a millisecond either side of a day
    _rescore(state, at_ms, DEFAULT_POLICY, None)
    assert state.rfm == rfm_at(state.last_purchase_ms, orders, spend, at_ms, DEFAULT_POLICY)
    assert state.rfm_due_ms == recency_due_ms(state.last_purchase_ms, at_ms, DEFAULT_POLICY)
