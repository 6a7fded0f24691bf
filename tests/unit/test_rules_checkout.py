"""docs/rules.md, checkout: holds placed, captured, released and expired; pending points; command outcomes."""
from __future__ import annotations

from schemas.policy import Policy
from tests.support.events import day, ev, tick
from tests.support.scenario import given

PENDING = Policy.model_validate({"earn": {"pending_days": 14}})


def hold(hold_id: str, points: int, at: str = day(1), expires_in: int = 900):
    return ev("hold.requested", at, hold_id=hold_id, points=points, expires_in=expires_in)


def capture(hold_id: str, at: str = day(1, 0.1), **kw):
    return ev("hold.captured", at, hold_id=hold_id, **kw)


def release(hold_id: str, at: str = day(1, 0.1)):
    return ev("hold.released", at, hold_id=hold_id)


def funded(points: int = 100, policy: Policy = Policy()):
    return given(ev("points.adjusted", day(0), points=points, reason="seed"), policy=policy)


def outcome(s, key: str):
    return s.state().commands[key][2:]


def test_a_hold_reserves_points_without_a_ledger_entry_and_refuses_what_is_held():
    s = funded(100).when(hold("h1", 70))
    assert s.ledger() == [] and [u["kind"] for u in s.updates()] == ["hold_placed"]
    s.then(points_balance=100, held_points=70)
    s.when(ev("redemption.requested", day(1, 0.01), redemption_id="r1", points=31))
    assert s.updates(kind="redemption_rejected")[0]["reason"] == "insufficient_points"
    s.when(hold("h2", 31, at=day(1, 0.02)))
    assert outcome(s, "hold:h2") == ["rejected", {"reason": "insufficient_points"}]
    s.when(ev("redemption.requested", day(1, 0.03), redemption_id="r2", points=30))
    s.then(points_balance=70, held_points=70)


def test_a_partial_capture_redeems_part_of_the_hold_and_releases_the_rest():
    s = funded(100).when(hold("h1", 70), capture("h1", points=50))
    assert s.points() == [-50]
    assert s.updates(kind="hold_captured")[0]["released"] == 20
    s.then(points_balance=50, held_points=0)
    assert outcome(s, "capture:h1") == ["accepted", {"entry_id": "c1:2", "points": -50, "balance_after": 50,
                                                      "released": 20}]


def test_a_capture_without_points_takes_the_whole_hold_and_more_than_held_is_refused():
    s = funded(100).when(hold("h1", 70), capture("h1", points=71))
    assert outcome(s, "capture:h1") == ["rejected", {"reason": "exceeds_hold"}]
    s.then(held_points=70)
    s = funded(100).when(hold("h1", 70), capture("h1"))
    s.then(points_balance=30, held_points=0)


def test_a_released_hold_gives_its_points_back_and_cannot_be_captured():
    s = funded(100).when(hold("h1", 70), release("h1"), capture("h1", at=day(1, 0.2)))
    s.then(points_balance=100, held_points=0)
    assert outcome(s, "release:h1") == ["accepted", {"points": 70}]
    assert outcome(s, "capture:h1") == ["rejected", {"reason": "hold_closed"}]
    s.when(release("nope", at=day(1, 0.3)))
    assert outcome(s, "release:nope") == ["rejected", {"reason": "unknown_hold"}]


def test_an_open_hold_expires_at_its_time_by_the_partition_clock():
    s = funded(100).when(hold("h1", 70, expires_in=3600), tick(day(1, 0.99)))
    s.then(held_points=70)
    expiring = tick(day(1, 1))
    s.when(expiring)
    assert s.updates(kind="hold_expired") == [{
        "customer_id": "c1", "kind": "hold_expired", "hold_id": "h1", "points": 70, "at": "2026-01-02T03:00:00Z",
        "source_event_id": expiring.event_id}]
    s.then(held_points=0, points_balance=100)
    s.when(capture("h1", at=day(1, 1.5)))
    assert outcome(s, "capture:h1") == ["rejected", {"reason": "hold_closed"}]


def test_a_capture_never_overspends_after_the_balance_fell_under_the_hold():
    s = funded(100).when(hold("h1", 70), ev("points.adjusted", day(1, 0.05), points=-50, reason="fix"),
                         capture("h1"))
    assert outcome(s, "capture:h1") == ["rejected", {"reason": "insufficient_points"}]
    s.then(points_balance=50, held_points=70)


def test_a_repeated_command_id_changes_nothing_and_keeps_its_first_outcome():
    s = funded(100).when(hold("h1", 70), capture("h1", points=10))
    before = s.state().to_dict()
    s.when(ev("hold.captured", day(1, 0.2), hold_id="h1", points=20), hold("h1", 5, at=day(1, 0.3)))
    after = s.state().to_dict()
    assert s.ledger() == [] and s.updates() == []
    assert {k: v for k, v in after.items() if k not in ("seen_event_ids", "events_applied", "as_of_ms",
                                                         "last_interaction_ms", "next_due_ms")} == \
        {k: v for k, v in before.items() if k not in ("seen_event_ids", "events_applied", "as_of_ms",
                                                      "last_interaction_ms", "next_due_ms")}


def test_earned_points_stay_pending_for_the_return_window_then_become_spendable():
    s = given(ev("order.paid", day(0), order_id="o1", amount="100.00"), policy=PENDING)
    s.then(points_balance=100, pending_points=100)
    s.when(ev("redemption.requested", day(1), redemption_id="r1", points=1))
    assert outcome(s, "redeem:r1") == ["rejected", {"reason": "insufficient_points"}]
    s.when(tick(day(14)))
    assert s.updates(kind="points_released")[0]["points"] == 100
    s.then(pending_points=0)
    s.when(ev("redemption.requested", day(14, 1), redemption_id="r2", points=100))
    s.then(points_balance=0)


def test_a_refund_inside_the_window_takes_the_pending_points_before_they_were_spendable():
    s = given(ev("order.paid", day(0), order_id="o1", amount="100.00"),
              ev("order.paid", day(1), order_id="o2", amount="50.00"), policy=PENDING)
    s.when(ev("order.refunded", day(2), order_id="o1", amount="40.00"))
    s.then(points_balance=110, pending_points=110)
    assert [(p.order_id, p.points) for p in s.state().pending] == [("o1", 60), ("o2", 50)]
    s.when(ev("order.refunded", day(3), order_id="o1", amount="60.00"))
    assert [(p.order_id, p.points) for p in s.state().pending] == [("o2", 50)]


def test_pending_lots_expire_counted_from_the_order():
    s = given(ev("order.paid", day(0), order_id="o1", amount="100.00"), policy=PENDING)
    assert s.state().lots[0].expires_at_ms - s.state().pending[0].release_at_ms == (365 - 14) * 86_400_000


def test_the_history_keeps_the_last_twenty_ledger_entries_newest_last():
    s = given(*[ev("points.adjusted", day(0, i), points=i + 1, reason="x") for i in range(25)])
    history = s.state().history
    assert [entry[0] for entry in history] == list(range(6, 26))
    assert history[-1][2:5] == ["adjust", 25, sum(range(1, 26))]


def test_a_claim_and_a_redemption_remember_their_outcome_for_an_answer():
    policy = Policy.model_validate({"rewards": {"mug": {"points": 60, "coupon_value": "5.00", "valid_days": 30}}})
    s = funded(100, policy).when(ev("reward.claimed", day(1), claim_id="k1", reward_id="mug"),
                                 ev("reward.claimed", day(1, 1), claim_id="k2", reward_id="mug"),
                                 ev("reward.claimed", day(1, 2), claim_id="k3", reward_id="tea"))
    assert outcome(s, "claim:k1") == ["accepted", {"entry_id": "c1:2", "points": -60, "balance_after": 40,
                                                    "coupon_id": "c1:k1", "expires_at": "2026-02-01T02:00:00Z"}]
    assert outcome(s, "claim:k2") == ["rejected", {"reason": "insufficient_points"}]
    assert outcome(s, "claim:k3") == ["rejected", {"reason": "unknown_reward"}]


def paid(order_id: str, amount: str, at: str = day(1, 0.1), **kw):
    return ev("order.paid", at, order_id=order_id, amount=amount, **kw)


def test_an_order_naming_an_open_hold_captures_it_before_it_earns():
    s = funded(1000).when(hold("h1", 300), paid("o1", "100.00", hold_id="h1"))
    redeemed, earned = s.points()
    assert redeemed == -300 and earned > 0
    assert [e["kind"] for e in s.ledger()] == ["redeem", "earn"]
    s.then(points_balance=700 + earned, held_points=0)
    assert s.updates(kind="hold_captured")[0] == {**s.updates(kind="hold_captured")[0], "order_id": "o1",
                                                  "points": 300, "released": 0}
    assert outcome(s, "capture:h1") == ["accepted", {"entry_id": "c1:2", "points": -300, "balance_after": 700,
                                                      "released": 0, "order_id": "o1"}]
    # A capture asked over HTTP afterwards (the whole hold) gets the order's outcome, and debits nothing more.
    s.when(capture("h1", at=day(1, 0.2)))
    assert s.ledger() == [] and s.updates() == []


def test_an_order_naming_a_hold_that_is_not_open_is_still_paid_and_captures_nothing():
    s = funded(1000).when(hold("h1", 300), release("h1"), paid("o1", "100.00", at=day(1, 0.2), hold_id="h1"),
                          paid("o2", "100.00", at=day(1, 0.3), hold_id="never"))
    assert [u["reason"] for u in s.updates(kind="capture_rejected")] == ["hold_closed", "unknown_hold"]
    assert [e["kind"] for e in s.ledger()] == ["earn", "earn"]
    s.then(held_points=0)


def test_a_repeated_order_does_not_capture_its_hold_twice():
    s = funded(1000).when(hold("h1", 300), hold("h2", 200, at=day(1, 0.05)), paid("o1", "10.00", hold_id="h1"))
    s.when(paid("o1", "10.00", at=day(1, 0.2), hold_id="h2"))
    assert s.ledger() == [] and s.updates() == []
    s.then(held_points=200)
