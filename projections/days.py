"""Customer-local dates of instants, cached per zone and UTC day (the rules ask for them on every event)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Optional

from schemas.timeutil import DAY_MS, local_date, zone

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# (time zone, UTC day number) -> (instant of the local midnight in that UTC day, local date before it, after it);
# None for a UTC day in which the zone's offset changes (those are computed directly).
_SPLITS: dict[tuple[str, int], Optional[tuple[int, date, date]]] = {}
_SPLITS_MAX = 200_000  # about 30 years of days in each of 20 time zones; cleared when full


def _split(tz_name: str, utc_day: int) -> Optional[tuple[int, date, date]]:
    """Return where a UTC day changes local date in the zone, if its UTC offset is the same all day."""
    tz = zone(tz_name)
    start_ms = utc_day * DAY_MS
    offset = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc).astimezone(tz).utcoffset()
    end = datetime.fromtimestamp((start_ms + DAY_MS - 1) / 1000, tz=timezone.utc).astimezone(tz).utcoffset()
    if offset != end:
        return None
    offset_ms = offset.days * DAY_MS + offset.seconds * 1000 + offset.microseconds // 1000
    local_day = (start_ms + offset_ms) // DAY_MS  # the local date at the start of the UTC day, as a day number
    before = date.fromordinal(_EPOCH_ORDINAL + local_day)
    return (local_day + 1) * DAY_MS - offset_ms, before, date.fromordinal(_EPOCH_ORDINAL + local_day + 1)


def local_day(epoch_ms: int, tz_name: str) -> date:
    """Return the calendar date at that instant in the time zone (what schemas.timeutil.local_date returns)."""
    key = (tz_name, epoch_ms // DAY_MS)
    split = _SPLITS.get(key, False)
    if split is False:
        if len(_SPLITS) >= _SPLITS_MAX:
            _SPLITS.clear()
        split = _SPLITS[key] = _split(tz_name, key[1])
    if split is None:
        return local_date(epoch_ms, tz_name)
    return split[1] if epoch_ms < split[0] else split[2]
