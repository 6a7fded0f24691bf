"""The RFC 3339 parser agrees with Python's datetime on every valid timestamp (it is computed by hand for speed)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from schemas.timeutil import EPOCH, parse_rfc3339_ms

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)


@given(moments, st.sampled_from(["T", "t", " "]), st.booleans())
def test_parse_equals_datetime_arithmetic(moment, separator, utc_as_z):
    text = moment.isoformat(sep=separator)
    if utc_as_z and moment.utcoffset() == timedelta(0):
        text = text[:-6] + "Z"
    assert parse_rfc3339_ms(text) == (moment - EPOCH) // timedelta(milliseconds=1)
