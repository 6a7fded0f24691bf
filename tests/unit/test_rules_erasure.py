"""docs/events.md, customer.erased: personal data goes, points, tier and ledger stay."""
from __future__ import annotations

from tests.support.events import day, ev, tick
from tests.support.scenario import given


def profiled():
    return given(ev("customer.registered", day(0), birthday="1990-05-20", timezone="Europe/Paris"),
                 ev("order.paid", day(1), order_id="o1", amount="1200.00"))


def test_erasure_forgets_birthday_and_time_zone():
    s = profiled().when(ev("customer.erased", day(2)))
    s.then(birthday=None, timezone=None)


def test_erasure_keeps_points_tier_lots_orders_and_writes_no_ledger_entry():
    s = profiled()
    before = s.state().to_dict()
    s.when(ev("customer.erased", day(2)))
    assert s.ledger() == [] and s.updates() == []
    after = s.state().to_dict()
    for name in ("points_balance", "lots", "debt_points", "tier", "status", "orders", "lifetime_spend_minor",
                 "spend_12m_minor", "ledger_seq", "last_interaction_ms", "last_purchase_ms"):
        assert after[name] == before[name], name


def test_erasure_stops_birthday_campaigns():
    s = profiled().when(ev("customer.erased", day(2)), *[tick(day(n)) for n in range(2, 800, 3)])
    assert s.campaigns(campaign="birthday") == []


def test_points_still_expire_and_earn_after_erasure():
    s = profiled().when(ev("customer.erased", day(2)), ev("order.paid", day(3), order_id="o2", amount="10"))
    assert s.points() == [12]
    s.when(tick(day(366)))
    assert s.points(kind="expire") == [-1200]


def test_after_erasure_the_local_day_is_the_default_time_zone():
    s = given(ev("customer.registered", day(0), timezone="Asia/Tokyo"), ev("customer.erased", day(0)),
              ev("customer.checked_in", "2026-01-02T23:30:00+08:00"))
    # 00:30 the next day in Tokyo, but still 2 Jan in Shanghai: no second check-in that day
    assert s.when(ev("customer.checked_in", "2026-01-02T23:45:00+08:00")).points() == []
    assert s.when(ev("customer.checked_in", "2026-01-03T00:15:00+08:00")).points() == [5]


def test_a_profile_update_may_set_data_again_after_erasure():
    s = profiled().when(ev("customer.erased", day(2)), ev("customer.profile_updated", day(3), timezone="Asia/Tokyo"))
    s.then(timezone="Asia/Tokyo", birthday=None)


def test_a_profile_update_with_an_explicit_null_clears_a_field():
    s = profiled().when(ev("customer.profile_updated", day(3), birthday=None))
    s.then(birthday=None, timezone="Europe/Paris")
