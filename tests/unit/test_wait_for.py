"""wait_for, the polling helper of the broker tests: it returns as soon as it can and fails with the real reason."""
from __future__ import annotations

import itertools
import time

import pytest

from tests.fixtures.kafka import wait_for


def test_it_returns_the_first_truthy_value_polling_through_falsy_values_and_errors():
    calls = itertools.count(1)

    def condition():
        n = next(calls)
        if n == 1:
            raise ConnectionRefusedError("still starting")
        if n == 2:
            assert n == 3, "not yet"
        return {"n": n} if n >= 4 else None

    assert wait_for(condition, timeout_s=5, interval_s=0.01) == {"n": 4}


def test_a_condition_that_keeps_failing_an_assertion_fails_with_that_assertion_at_the_deadline():
    def wrong_value():
        assert {"events_applied": 7} == {"events_applied": 5}, "more events applied than sent"

    started = time.monotonic()
    with pytest.raises(AssertionError, match="more events applied than sent") as failure:
        wait_for(wrong_value, timeout_s=0.3, what="the worker to apply 5 events", interval_s=0.05)
    assert time.monotonic() - started < 2
    assert "timed out" not in str(failure.value)
    assert any("0.3s of waiting for the worker to apply 5 events" in note for note in failure.value.__notes__)


def test_the_last_assertion_is_kept_when_the_condition_then_fails_otherwise():
    calls = itertools.count(1)

    def flaky():
        if next(calls) == 1:
            assert False, "balance 15 != ledger 10"
        raise ConnectionResetError("the worker went away")

    with pytest.raises(AssertionError, match="balance 15 != ledger 10") as failure:
        wait_for(flaky, timeout_s=0.2, interval_s=0.05)
    assert "ConnectionResetError" in failure.value.__notes__[0]


def test_without_an_assertion_it_times_out_naming_what_it_waited_for_and_the_last_outcome():
    def unreachable():
        raise OSError("refused")

    with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for the ledger \(last: OSError"):
        wait_for(unreachable, timeout_s=0.2, what="the ledger", interval_s=0.05)
    with pytest.raises(AssertionError, match=r"waiting for a condition \(last: 0\)"):
        wait_for(lambda: 0, timeout_s=0.1, interval_s=0.05)
