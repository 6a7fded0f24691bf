"""A fix for a Faust consumer bug that stalls offset commits after a rebalance (any broker)."""
from __future__ import annotations

from typing import Any, Optional

_ORIGINAL_NEW_OFFSET: Optional[Any] = None


def fix_commit_after_redelivery() -> None:
    """Make Faust's committable-offset scan ignore offsets that were acked twice.

    After a rebalance Faust resumes the partitions before it seeks them to the committed offsets, so
    records fetched in between are processed and acked, then read again after the seek; the jump in read
    offsets is recorded as a "gap" that `Consumer._new_offset` merges into the acked list, which then
    holds those offsets twice. Its run-of-consecutive-offsets scan stops at every repeat, so each commit
    moved on by one offset (one per `broker_commit_interval`): the group's committed offsets lagged far
    behind the processed records. Dropping repeats before the scan keeps it exact.
    """
    global _ORIGINAL_NEW_OFFSET
    from faust.transport.consumer import Consumer

    if _ORIGINAL_NEW_OFFSET is not None:
        return
    _ORIGINAL_NEW_OFFSET = original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> Optional[int]:
        acked = self._acked[tp]
        if len(acked) > 1:
            acked[:] = sorted(set(acked))
        return original(self, tp)

    Consumer._new_offset = _new_offset
