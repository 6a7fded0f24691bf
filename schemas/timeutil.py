"""Event-time helpers: epoch milliseconds, RFC 3339 text and customer-local dates."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)  # built once: the parse runs on every event
# The event times the engine accepts: expiry, windows and birthdays computed from them (years ahead)
# stay far inside datetime's year 1-9999, so no rule can overflow on a valid event.
MIN_OCCURRED_AT_MS = 946_684_800_000      # 2000-01-01T00:00:00Z, inclusive
MAX_OCCURRED_AT_MS = 7_258_118_400_000    # 2200-01-01T00:00:00Z, exclusive


def parse_rfc3339_ms(text: str) -> int:
    """Parse an RFC 3339 timestamp with an offset into epoch milliseconds; raise only ValueError."""
    # datetime.fromisoformat alone also takes other ISO 8601 forms (week dates, offsets without a colon,
    # "\x00Z"); these positional checks keep the RFC 3339 shape and cost far less than a regex.
    if not isinstance(text, str) or not 20 <= len(text) <= 40 or text[4] != "-" or text[7] != "-" \
            or text[10] not in "Tt " or text[13] != ":" or text[16] != ":" or not text[17:19].isdigit() \
            or not (text[-1] in "Zz" and text[-2].isdigit() or text[-6] in "+-" and text[-3] == ":"):
        raise ValueError("not an RFC 3339 timestamp with an offset, e.g. 2026-01-01T10:00:00+08:00")
    try:
        moment = datetime.fromisoformat(text if text[-1] != "z" else text[:-1] + "Z")
        return (moment - EPOCH) // _ONE_MS
    except (ArithmeticError, TypeError) as exc:  # OverflowError is an ArithmeticError
        # e.g. 0001-01-01T00:00:00+08:00 is before year 1 in UTC; callers (and pydantic) expect ValueError.
        raise ValueError("timestamp is out of range") from exc


@lru_cache(maxsize=8192)
def _day_text(days_since_epoch: int) -> str:
    """Return the UTC date text of a day number, cached (outputs format many times of one day)."""
    return (EPOCH + timedelta(days=days_since_epoch)).strftime("%Y-%m-%d")


# The clock text of every minute of a day and of every second of a minute, built once: small and fixed,
# unlike a cache of every second's text, which grows with each new second formatted.
_HOUR_MINUTE = tuple(f"T{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECOND = tuple(f"{second:02d}" for second in range(60))


def format_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 in UTC, e.g. 2026-01-02T03:04:05Z (milliseconds only if any)."""
    days, rest_ms = divmod(epoch_ms, DAY_MS)
    seconds, millis = divmod(rest_ms, 1000)
    minutes, second = divmod(seconds, 60)
    if millis:
        return f"{_day_text(days)}{_HOUR_MINUTE[minutes]}{_SECOND[second]}.{millis:03d}Z"
    return f"{_day_text(days)}{_HOUR_MINUTE[minutes]}{_SECOND[second]}Z"


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the (cached) IANA time zone of that name."""
    return ZoneInfo(name)


def local_date(epoch_ms: int, tz_name: str) -> date:
    """Return the calendar date at that instant in the time zone."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=zone(tz_name)).date()


@lru_cache(maxsize=65536)
def local_midnight_ms(day: date, tz_name: str) -> int:
    """Return the instant of local midnight starting that date in the time zone."""
    moment = datetime(day.year, day.month, day.day, tzinfo=zone(tz_name))
    return (moment - EPOCH) // timedelta(milliseconds=1)
