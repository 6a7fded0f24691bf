"""A batch in flight when the fetch loop is cancelled, as Faust cancels it at a stop, is finished or abandoned."""
from __future__ import annotations

import asyncio

import pytest

from streams.stopping import run_to_the_end


async def _write_in_steps(steps: list[str], count: int, pause_s: float) -> None:
    """Stand-in for a batch's writes: several awaits, each a point where a plain cancel would cut it."""
    for step in range(count):
        await asyncio.sleep(pause_s)
        steps.append(f"part {step}")


async def _stop_like_faust(task: asyncio.Task, every_s: float) -> None:
    """Cancel the task, then again each time a wait for it runs out (faust's Fetcher.on_stop)."""
    task.cancel()
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(task), every_s)
            return
        except asyncio.TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            return


def test_a_batch_cut_by_a_stop_is_finished_before_the_cancel_goes_on():
    steps, notes = [], []

    async def main():
        fetch_loop = asyncio.ensure_future(run_to_the_end(_write_in_steps(steps, 6, 0.02), notes.append))
        await asyncio.sleep(0.03)  # inside the second part
        await _stop_like_faust(fetch_loop, every_s=0.01)  # cancels it several times over
        with pytest.raises(asyncio.CancelledError):
            await fetch_loop

    asyncio.run(main())
    assert steps == [f"part {n}" for n in range(6)] and notes == ["finished"]


def test_a_batch_that_outlasts_the_stop_limit_is_abandoned_and_said_so():
    steps, notes = [], []

    async def main():
        fetch_loop = asyncio.ensure_future(run_to_the_end(_write_in_steps(steps, 100, 0.02), notes.append,
                                                          limit_s=0.05))
        await asyncio.sleep(0.03)
        await _stop_like_faust(fetch_loop, every_s=0.01)
        with pytest.raises(asyncio.CancelledError):
            await fetch_loop

    asyncio.run(main())
    assert 0 < len(steps) < 100 and notes == ["abandoned"]


def test_a_stop_repeated_while_the_abandoned_batch_unwinds_still_says_abandoned():
    """On a loaded machine the next cancel of the stop can land while the cut batch is still unwinding."""
    steps, notes = [], []

    async def slow_to_unwind():
        try:
            await _write_in_steps(steps, 100, 0.02)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # e.g. a write in flight that is given up
            raise

    async def main():
        fetch_loop = asyncio.ensure_future(run_to_the_end(slow_to_unwind(), notes.append, limit_s=0.05))
        await asyncio.sleep(0.03)
        await _stop_like_faust(fetch_loop, every_s=0.01)  # cancels again while the work unwinds
        with pytest.raises(asyncio.CancelledError):
            await fetch_loop

    asyncio.run(main())
    assert 0 < len(steps) < 100 and notes == ["abandoned"]


def test_without_a_stop_the_work_runs_as_awaited_and_its_error_reaches_the_caller():
    notes = []

    async def fails():
        await asyncio.sleep(0)
        raise ValueError("broken batch")

    async def main():
        steps = []
        await run_to_the_end(_write_in_steps(steps, 3, 0), notes.append)
        assert steps == ["part 0", "part 1", "part 2"]
        with pytest.raises(ValueError, match="broken batch"):
            await run_to_the_end(fails(), notes.append)

    asyncio.run(main())
    assert notes == []
