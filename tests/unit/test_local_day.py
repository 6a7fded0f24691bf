"""The fold's cached local dates (projections/days.py) and time text (schemas/timeutil.py) equal the uncached ones."""
import zoneinfo
from datetime import timedelta

from hypothesis import given, settings, strategies as st

from projections.days import local_day
from schemas.timeutil import EPOCH, MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS, format_ms, local_date

_ZONES = sorted(zoneinfo.available_timezones())


@settings(max_examples=2000, deadline=None)
@given(st.integers(MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1), st.sampled_from(_ZONES))
def test_local_day_is_local_date(epoch_ms, tz_name):
    assert local_day(epoch_ms, tz_name) == local_date(epoch_ms, tz_name)


def test_local_day_around_transitions_and_midnights():
    # Every 30 minutes (less a millisecond, so every minute offset comes up) over 2020-2024, in zones whose
    # clocks change at or near midnight, by half hours, or skipped a whole day.
    for tz_name in ("America/New_York", "Europe/Berlin", "America/Santiago", "Asia/Beirut", "Australia/Lord_Howe",
                    "Pacific/Apia", "America/Havana", "Asia/Kathmandu", "Asia/Shanghai"):
        for epoch_ms in range(1_577_836_800_000, 1_735_689_600_000, 1_799_999):
            assert local_day(epoch_ms, tz_name) == local_date(epoch_ms, tz_name), (tz_name, epoch_ms)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS),
                 st.integers(0, 253_402_300_799).map(lambda n: n * 1000)))  # whole seconds up to year 9999
def test_format_ms_is_the_uncached_rfc3339_text(epoch_ms):
    assert format_ms(epoch_ms) == uncached_format_ms(epoch_ms)
    assert format_ms(epoch_ms) == uncached_format_ms(epoch_ms)  # again, the day text from its cache


def uncached_format_ms(epoch_ms: int) -> str:
    """The oracle: datetime's own text of the instant, with milliseconds only when there are any."""
    moment = EPOCH + timedelta(milliseconds=epoch_ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{epoch_ms % 1000:03d}Z" if epoch_ms % 1000 else f"{text}Z"
