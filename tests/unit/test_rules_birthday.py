"""docs/rules.md, birthday campaign: once a year at local midnight, up to 3 days late."""
from __future__ import annotations

from tests.support.events import day, ev, tick
from tests.support.scenario import given


def born(birthday: str = "05-20", **kw):
    return ev("customer.registered", "2026-01-01T10:00:00+08:00", birthday=birthday, **kw)


def trigger_ids(s):
    return [c["trigger_id"] for c in s.campaigns(campaign="birthday")]


def test_birthday_fires_at_local_midnight_in_shanghai_by_default():
    s = given(born()).when(tick("2026-05-19T15:59:59Z"))
    assert trigger_ids(s) == []
    clock = tick("2026-05-19T16:00:00Z")
    s.when(clock)
    assert s.campaigns(campaign="birthday") == [{
        "trigger_id": "birthday:c1:2026", "campaign": "birthday", "customer_id": "c1",
        "at": "2026-05-19T16:00:00Z", "tier": "standard", "status": "potential", "points_balance": 0,
        "details": {"local_date": "2026-05-20"},
    }]


def test_birthday_fires_at_local_midnight_in_the_customers_time_zone():
    s = given(born(timezone="America/New_York")).when(tick("2026-05-20T03:59:59Z"))
    assert trigger_ids(s) == []  # already 20 May in Shanghai, not yet in New York
    s.when(tick("2026-05-20T04:00:00Z"))
    assert trigger_ids(s) == ["birthday:c1:2026"]
    assert s.campaigns()[0]["at"] == "2026-05-20T04:00:00Z"
    assert "timezone" not in s.campaigns()[0]["details"]  # personal data stays out of the output topics


def test_a_birthday_with_a_year_fires_on_its_month_and_day():
    s = given(born("1990-05-20")).when(tick("2026-05-20T00:00:00Z"))
    assert trigger_ids(s) == ["birthday:c1:2026"]


def test_29_february_fires_on_28_february_in_other_years():
    s = given(born("02-29")).when(tick("2026-02-27T15:59:59Z"))
    assert trigger_ids(s) == []
    s.when(tick("2026-02-27T16:00:00Z"))
    assert s.campaigns()[0]["details"]["local_date"] == "2026-02-28"


def test_29_february_fires_on_29_february_in_leap_years():
    s = given(born("2000-02-29"), tick("2027-12-31T00:00:00Z")).when(tick("2028-02-28T00:00:00Z"))
    assert trigger_ids(s) == []
    s.when(tick("2028-02-28T16:00:00Z"))
    assert trigger_ids(s) == ["birthday:c1:2028"]
    assert s.campaigns()[0]["details"]["local_date"] == "2028-02-29"


def test_birthday_fires_when_the_clock_arrives_up_to_3_days_late():
    s = given(born(), tick("2026-05-19T00:00:00Z")).when(tick("2026-05-22T16:00:00Z"))  # midnight + 3 days
    assert trigger_ids(s) == ["birthday:c1:2026"]
    assert s.campaigns()[0]["at"] == "2026-05-19T16:00:00Z"


def test_birthday_does_not_fire_when_missed_by_more_than_3_days():
    s = given(born(), tick("2026-05-19T00:00:00Z")).when(tick("2026-05-22T16:00:01Z"))
    assert trigger_ids(s) == []
    s.when(tick("2026-12-31T00:00:00Z"))
    assert trigger_ids(s) == []
    s.when(tick("2027-05-19T16:00:00Z"))
    assert trigger_ids(s) == ["birthday:c1:2027"]


def test_birthday_fires_once_a_year_under_daily_ticks():
    s = given(born()).when(*[tick(day(n)) for n in range(0, 800, 1)])
    assert trigger_ids(s) == ["birthday:c1:2026", "birthday:c1:2027"]


def test_birthday_fires_by_an_event_that_moves_the_clock_too():
    s = given(born()).when(ev("customer.visited", "2026-05-20T09:00:00+08:00"))
    assert trigger_ids(s) == ["birthday:c1:2026"]


def test_never_twice_a_year_even_if_the_birthday_is_changed():
    s = given(born(), tick("2026-05-20T00:00:00Z"), ev("customer.profile_updated", day(150), birthday="08-15"))
    s.when(*[tick(day(n)) for n in range(150, 365)])
    assert trigger_ids(s) == []
    s.when(*[tick(day(n)) for n in range(365, 600)])
    assert trigger_ids(s) == ["birthday:c1:2027"]
    assert s.campaigns(campaign="birthday")[0]["details"]["local_date"] == "2027-08-15"


def test_a_birthday_moved_later_before_it_fired_fires_on_the_new_day():
    s = given(born(), ev("customer.profile_updated", day(100), birthday="08-15"))
    s.when(*[tick(day(n)) for n in range(100, 365)])
    assert [c["details"]["local_date"] for c in s.campaigns(campaign="birthday")] == ["2026-08-15"]


def test_a_birthday_set_after_it_has_passed_this_year_waits_for_next_year():
    s = given(ev("customer.registered", "2026-06-01T10:00:00+08:00", birthday="05-20"))
    s.when(*[tick(day(n)) for n in range(151, 520)])
    assert trigger_ids(s) == ["birthday:c1:2027"]


def test_no_birthday_no_campaign():
    s = given(ev("customer.registered")).when(*[tick(day(n)) for n in range(0, 400, 5)])
    assert trigger_ids(s) == []
