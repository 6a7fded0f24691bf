"""A fix for a Faust consumer race after a rebalance (any broker): records lost and commits stalled."""
from __future__ import annotations

from typing import Any

_ORIGINALS: dict[str, Any] = {}


def apply_faust_fixes() -> None:
    """Install the fix once per process."""
    if not _ORIGINALS:
        _seek_before_resuming()


def _seek_before_resuming() -> None:
    """Seek the source partitions to their committed offsets *before* fetching from them again.

    `Recovery.on_recovery_completed` resumes the partitions and only then seeks them. Records fetched in
    between were processed, then read again after the seek; some of them were never acked (seen: 3 to 7
    records of a partition after a kill -9 and restart), so the group's commits stopped at the hole and
    those events were not applied until the next restart. The records read twice were also merged into
    Faust's acked list twice, which made each commit advance by a single offset.
    """
    from faust.tables.recovery import Recovery

    original = _ORIGINALS["on_recovery_completed"] = Recovery.on_recovery_completed

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        deferred: list = []
        seek = consumer.perform_seek

        async def seek_then_resume() -> None:
            await seek()
            while deferred:
                type(consumer).resume_partitions(consumer, deferred.pop())

        consumer.resume_partitions = deferred.append   # instance attributes shadow the methods meanwhile
        consumer.perform_seek = seek_then_resume
        try:
            await original(self, generation_id)
        finally:
            del consumer.resume_partitions, consumer.perform_seek
            while deferred:  # no seek happened (nothing assigned): resume as Faust would have
                consumer.resume_partitions(deferred.pop())

    Recovery.on_recovery_completed = on_recovery_completed

