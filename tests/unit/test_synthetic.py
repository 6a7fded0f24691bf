"""`produce --synthetic N --end now`: the same history, moved to end at a given time, for a wall-clock worker."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from schemas.timeutil import DAY_MS, parse_rfc3339_ms
from tools.cli import main
from tools.synthetic import SPAN_DAYS, parse_end, synthetic_history

DEFAULT_END_MS = parse_rfc3339_ms("2026-02-25T00:00:00Z")


def _history(**kwargs) -> list[dict]:
    return list(synthetic_history(600, 40, seed=3, **kwargs))


def test_the_default_history_is_unchanged_and_ends_early_in_2026():
    default = _history()
    assert default == _history(end_ms=None)
    ticks = [parse_rfc3339_ms(d["occurred_at"]) for d in default if d["event_type"] == "clock.tick"]
    assert len(ticks) == SPAN_DAYS and max(ticks) == DEFAULT_END_MS


def test_an_end_moves_every_time_by_the_same_amount_and_nothing_else():
    end_ms = parse_rfc3339_ms("2026-11-30T12:34:56.789Z")
    default, moved = _history(), _history(end_ms=end_ms)
    assert len(default) == len(moved)
    for a, b in zip(default, moved):
        assert parse_rfc3339_ms(b["occurred_at"]) - parse_rfc3339_ms(a["occurred_at"]) == end_ms - DEFAULT_END_MS
        assert {**a, "occurred_at": None} == {**b, "occurred_at": None}
    assert max(parse_rfc3339_ms(d["occurred_at"]) for d in moved) == end_ms  # the last tick; nothing later
    assert min(parse_rfc3339_ms(d["occurred_at"]) for d in moved) > end_ms - (SPAN_DAYS + 2) * DAY_MS


def test_end_is_now_or_a_past_time():
    now_ms = parse_rfc3339_ms("2026-11-30T00:00:00Z")
    assert parse_end(None, now_ms) is None
    assert parse_end("now", now_ms) == now_ms
    assert parse_end("2026-06-01T00:00:00Z", now_ms) == parse_rfc3339_ms("2026-06-01T00:00:00Z")
    for bad in ("2026-12-25T00:00:00Z", "yesterday"):
        with pytest.raises(click.ClickException) as refused:
            parse_end(bad, now_ms)
        assert refused.value.exit_code == 2 and "--end" in refused.value.message


def test_end_without_synthetic_is_refused():
    result = CliRunner().invoke(main, ["produce", "--tick", "2026-01-01T00:00:00Z", "--end", "now"])
    assert result.exit_code == 2 and "--end goes with --synthetic" in result.output
