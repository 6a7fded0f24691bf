"""`explain`: why a customer has their tier, status, value, points and campaigns, from the state alone.

The history (default time zone Asia/Shanghai; day(n) = 2026-01-01T02:00:00Z + n days):
  day 0   registered (birthday 03-14); order o1 1288.00 -> +1288 points; spend 1288.00: premium, active
  day 20  order o2 4000.00 at premium x1.2 -> +4800; spend 5288.00: vip
  day 21  refund o2 100.00 -> floor(4800 * 100 / 4000) = -120; spend 5188.00: still vip
  day 22  redemption r1 200 -> -200; balance 1288 + 4800 - 120 - 200 = 5768
          lots: the reversal and the redemption take the oldest lot: 1288 - 120 - 200 = 968 left
          -> 968 expiring 2027-01-01T02:00Z, 4800 expiring 2027-01-21T02:00Z
  day 40  a tick (2026-02-10T02:00Z): nothing falls due for c1 (its as_of stays day 22)
"""
from __future__ import annotations

from projections.explain import explain
from schemas.policy import Policy
from tests.support.events import day, ev, tick
from tests.support.scenario import given

HISTORY = (ev("customer.registered", day(0), birthday="03-14"),
           ev("order.paid", day(0), order_id="o1", amount="1288.00"),
           ev("order.paid", day(20), order_id="o2", amount="4000.00"),
           ev("order.refunded", day(21), order_id="o2", amount="100.00"),
           ev("redemption.requested", day(22), redemption_id="r1", points=200),
           tick(day(40)))


def explained(*events, clock: bool = True) -> dict:
    s = given(*events)
    return explain(s.state(), Policy(), s.fold.clock_ms if clock else None)


def test_as_of_is_the_partition_clock_when_given_else_the_state():
    assert explained(*HISTORY)["as_of"] == "2026-02-10T02:00:00Z"             # day 40, the tick
    assert explained(*HISTORY, clock=False)["as_of"] == "2026-01-23T02:00:00Z"  # day 22, the last event


def test_why_this_tier_the_orders_in_the_window_and_when_it_drops():
    tier = explained(*HISTORY)["tier"]
    assert (tier["tier"], tier["spend_12m"], tier["premium_min"], tier["vip_min"]) == ("vip", "5188.00", "1000.00",
                                                                                      "5000.00")
    assert tier["orders"] == [
        {"order_id": "o1", "paid_at": "2026-01-01T02:00:00Z", "paid": "1288.00", "refunded": "0.00",
         "net": "1288.00", "leaves_window_at": "2027-01-01T02:00:00Z"},
        {"order_id": "o2", "paid_at": "2026-01-21T02:00:00Z", "paid": "4000.00", "refunded": "100.00",
         "net": "3900.00", "leaves_window_at": "2027-01-21T02:00:00Z"}]
    # o1 leaves 365 days after day 0: 5188.00 - 1288.00 = 3900.00 premium; o2 leaves: 0.00 standard
    assert tier["if_nothing_happens"] == [
        {"at": "2027-01-01T02:00:00Z", "tier": "premium", "spend_12m": "3900.00", "order_leaving": "o1"},
        {"at": "2027-01-21T02:00:00Z", "tier": "standard", "spend_12m": "0.00", "order_leaving": "o2"}]
    assert tier["why"][0] == ("vip: net spend 5188.00 from 2 order(s) paid in the 365 days to 2026-02-10; "
                              "premium from 1000.00, vip from 5000.00.")
    assert tier["why"][-1] == ("if nothing happens: premium (spend 3900.00 once o1 leaves) from 2027-01-01, "
                               "standard (spend 0.00 once o2 leaves) from 2027-01-21.")


def test_why_this_status_the_last_purchase_and_interaction_and_the_next_changes():
    status = explained(*HISTORY)["status"]
    assert (status["status"], status["last_purchase_at"], status["last_interaction_at"]) == (
        "active", "2026-01-21T02:00:00Z", "2026-01-23T02:00:00Z")  # the redemption is an interaction
    # potential 30 days after the last interaction (day 52), dormant 180 days after it (day 202)
    assert status["if_nothing_happens"] == [{"at": "2026-02-22T02:00:00Z", "status": "potential"},
                                            {"at": "2026-07-22T02:00:00Z", "status": "dormant"}]
    assert status["why"][0] == ("active: last purchase 2026-01-21, 20 whole days ago; "
                                "last interaction 2026-01-23, 18 whole days ago.")
    assert status["why"][-1] == "if nothing happens: potential from 2026-02-22, dormant from 2026-07-22."


def test_why_this_value_the_scores_their_inputs_and_when_the_class_falls():
    value = explained(*HISTORY)["value"]
    # R 5: 20 whole days since day 20; F 2: two orders (o2 only partly refunded); M 4: 5188.00 >= 5000.00
    assert (value["value"], value["rfm"]) == ("medium", {"r": 5, "f": 2, "m": 4})  # F + M = 6 < 8
    assert (value["recency_whole_days"], value["frequency"], value["monetary"]) == (20, 2, "5188.00")
    # R 4 at day 51 and R 3 at day 111 keep medium; R 2 at day 20 + 181 = day 201 (2026-07-21): low
    assert value["if_nothing_happens"] == [{"at": "2026-07-21T02:00:00Z", "value": "low",
                                            "rfm": {"r": 2, "f": 2, "m": 4}}]
    assert value["why"][1].startswith("R 5: 20 whole days since the last purchase on 2026-01-21 (5 up to 30,")


def test_why_these_points_the_lots_the_debt_and_the_next_expiry():
    points = explained(*HISTORY)["points"]
    assert points["balance"] == 5768 and points["debt"] == 0
    assert points["lots"] == [{"points": 968, "expires_at": "2027-01-01T02:00:00Z"},
                              {"points": 4800, "expires_at": "2027-01-21T02:00:00Z"}]
    assert points["next_expiry"] == {"points": 968, "expires_at": "2027-01-01T02:00:00Z"}


def test_why_these_points_what_holds_and_pending_points_keep_from_the_balance():
    policy = Policy.model_validate({"earn": {"pending_days": 14}})
    s = given(ev("points.adjusted", day(0), points=1000, reason="seed"),
              ev("order.paid", day(1), order_id="o9", amount="100.00"),
              ev("hold.requested", day(1, 0.5), hold_id="h1", points=300, expires_in=900), policy=policy)
    points = explain(s.state(), policy, s.fold.clock_ms)["points"]
    earned = points["balance"] - 1000
    assert earned > 0 and (points["available"], points["held"], points["pending"]) == (700, 300, earned)
    assert [(h["hold_id"], h["points"]) for h in points["holds"]] == [("h1", 300)]
    assert [(p["order_id"], p["points"], p["available_at"][:10]) for p in points["pending_entries"]] == \
        [("o9", earned, day(15)[:10])]
    assert f"available 700: balance {1000 + earned} minus held 300 minus pending {earned}." in points["why"]
    assert any(line.startswith("300 points held by h1 until") for line in points["why"])
    assert f"{earned} points pending from order o9, spendable from {day(15)[:10]}" in points["why"]


def test_campaigns_before_any_fired_name_the_next_ones():
    campaigns = explained(*HISTORY)["campaigns"]
    assert campaigns["win_back"] == {"last": None, "not_before": None,
                                     "next_if_nothing_happens": "2026-07-22T02:00:00Z"}  # on becoming dormant
    # 2026-03-14 00:00 in Shanghai (+08:00) is 2026-03-13T16:00Z
    assert campaigns["birthday"] == {"last": None, "next": {"trigger_id": "birthday:c1:2026",
                                                            "at": "2026-03-13T16:00:00Z"}}


def test_campaigns_after_they_fired_give_their_trigger_ids_and_the_cooldown():
    # a birthday on 01-02: 2026-01-02 00:00 Shanghai = 2026-01-01T16:00Z, passed by the tick of day 1;
    # no interaction for 180 days: dormant and a win-back at day 180 (2026-06-30)
    campaigns = explained(ev("customer.registered", day(0), birthday="01-02"), tick(day(1)), tick(day(200)))["campaigns"]
    assert campaigns["win_back"] == {
        "last": {"trigger_id": "win_back:c1:2026-06-30", "at": "2026-06-30T02:00:00Z"},
        "not_before": "2026-09-28T02:00:00Z",  # 90 days after day 180 = day 270
        "next_if_nothing_happens": None}       # already dormant: only a later dormancy fires one
    assert campaigns["birthday"] == {"last": {"trigger_id": "birthday:c1:2026", "year": 2026},
                                     "next": {"trigger_id": "birthday:c1:2027", "at": "2027-01-01T16:00:00Z"}}


def test_a_customer_without_a_purchase_has_no_value_to_explain():
    why = explained(ev("customer.registered", day(0)), tick(day(10)))
    assert (why["value"]["value"], why["value"]["rfm"], why["value"]["if_nothing_happens"]) == ("none", None, [])
    assert why["tier"]["orders"] == [] and why["tier"]["if_nothing_happens"] == []
    # no interaction but the registration: dormant 180 days after it
    assert why["status"]["if_nothing_happens"] == [{"at": "2026-06-30T02:00:00Z", "status": "dormant"}]
    assert why["points"]["why"][-1] == "nothing to expire."


def test_explain_reads_the_state_and_changes_nothing():
    s = given(*HISTORY)
    before = s.state().to_bytes()
    explain(s.state(), Policy(), s.fold.clock_ms)
    assert s.state().to_bytes() == before


def test_after_erasure_explain_shows_no_birthday_or_time_zone():
    """An erased customer's explanation carries no personal field, not even the next birthday's date."""
    before = explained(*HISTORY)
    assert before["campaigns"]["birthday"]["next"] is not None  # the date of the next birthday, while on file
    erased = explained(*HISTORY, ev("customer.erased", day(41)))
    text = str(erased)
    assert erased["campaigns"]["birthday"]["next"] is None
    assert "03-14" not in text and "Asia/Shanghai" not in text and "timezone" not in text
