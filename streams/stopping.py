"""A batch in flight when its task is cancelled (a stop or a rebalance) is finished, or abandoned on purpose."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

# How long a stop waits for the batch in flight: its fold and writes take well under a second
# (docs/performance.md), but a broker that is slow to acknowledge may hold them up.
FINISH_AT_STOP_S = 30.0


async def run_to_the_end(work: Awaitable[None], note: Callable[[str], None],
                         limit_s: float = FINISH_AT_STOP_S) -> None:
    """Await `work` in its own task; if cancelled meanwhile, let it finish (up to limit_s), then re-raise.

    Faust stops the fetch loop, in which a batch is folded and written, by cancelling it (and again each
    second while it runs). Cut at an await, a batch would leave part of its changelog on the topic; so the
    work runs shielded and the cancellation is passed on only once it is done. `note` hears "finished" or,
    when limit_s ran out and the work was cancelled after all, "abandoned".
    """
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    stopped, deadline = False, None
    while not task.done():
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:  # the stop; a repeated one, even while the work unwinds, changes nothing
            if not stopped:
                stopped, deadline = True, loop.time() + limit_s
            continue
        if not task.done():  # the stop's wait ran out: cancel the work, then wait for it to unwind
            task.cancel()
            deadline = None
    if not stopped:
        task.result()  # the work's own exception, if any
        return
    note("abandoned" if task.cancelled() else "finished")
    raise asyncio.CancelledError()
