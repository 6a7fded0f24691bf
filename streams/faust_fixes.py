"""Fixes for Faust (any broker): consumer races after a rebalance, and the web pages it serves by itself."""
from __future__ import annotations

from typing import Any, Iterable

_ORIGINALS: dict[str, Any] = {}
_SOURCE_TOPICS: set[str] = set()


def apply_faust_fixes(source_topics: Iterable[str]) -> None:
    """Install the fixes once per process, for the agent's source topics."""
    _SOURCE_TOPICS.update(source_topics)
    if not _ORIGINALS:
        _seek_before_resuming()


def _seek_before_resuming() -> None:
    """Seek the source partitions to their committed offsets (or their beginning) *before* fetching again.

    `Recovery.on_recovery_completed` resumes the partitions and only then seeks them. Records fetched in
    between were processed, then read again after the seek; some of them were never acked (seen: 3 to 7
    records of a partition after a kill -9 and restart), so the group's commits stopped at the hole and
    those events were not applied until the next restart. The records read twice were also merged into
    Faust's acked list twice, which made each commit advance by a single offset.

    A source partition without a committed offset is sought to its beginning explicitly: aiokafka's
    `seek_to_committed` leaves such a partition where the fetcher happened to be, and after a worker was
    killed before its first commit that was seen to be the log end (the events before it never applied).
    """
    from faust.tables.recovery import Recovery

    original = _ORIGINALS["on_recovery_completed"] = Recovery.on_recovery_completed

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        deferred: list = []
        seek = consumer.perform_seek
        seek_to_committed = consumer.seek_to_committed
        committed: dict = {}

        async def remember_committed() -> Any:
            offsets = await seek_to_committed()
            committed.update(offsets)
            return offsets

        async def seek_then_resume() -> None:
            committed.clear()
            await seek()
            never_committed = [tp for tp, offset in committed.items()
                               if tp.topic in _SOURCE_TOPICS and (offset is None or offset <= 0)]
            for tp in never_committed:
                # Read from the start, wherever the fetcher's reset left it (past a retention limit,
                # offset 0 is out of range and the earliest reset takes the log start).
                await consumer.seek(tp, 0)
            while deferred:
                type(consumer).resume_partitions(consumer, deferred.pop())

        consumer.resume_partitions = deferred.append   # instance attributes shadow the methods meanwhile
        consumer.perform_seek = seek_then_resume
        consumer.seek_to_committed = remember_committed
        try:
            await original(self, generation_id)
        finally:
            del consumer.resume_partitions, consumer.perform_seek, consumer.seek_to_committed
            while deferred:  # no seek happened (nothing assigned): resume as Faust would have
                consumer.resume_partitions(deferred.pop())

    Recovery.on_recovery_completed = on_recovery_completed


def serve_only_our_pages(app: Any) -> None:
    """Serve none of Faust's built-in pages, not even its index at `/` (which has no setting to turn it off).

    The web_*_enabled settings turn off the router, table, graph and stats pages; what remains is a manager
    of blueprints that Faust applies when its web server starts: replaced by an empty one.
    """
    from faust.web.base import BlueprintManager
    app.web.blueprints = BlueprintManager([])
