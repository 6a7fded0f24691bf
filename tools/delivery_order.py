"""What a deliverer may commit and send next: offsets done in any order, and one record at a time per customer."""
from __future__ import annotations

from collections import deque
from typing import Generic, Hashable, Optional, TypeVar

_T = TypeVar("_T")


class Entry:
    """One record read from a partition, done once delivered, parked or skipped."""
    __slots__ = ("offset", "done")

    def __init__(self, offset: int) -> None:
        self.offset, self.done = offset, False


class Offsets:
    """The records read and not yet committed, per partition, in offset order.

    Records finish out of order (customers are delivered side by side), but a partition's offset may only
    move past a record once every record before it is done: at-least-once, never past an undelivered one.
    """

    def __init__(self) -> None:
        self._entries: dict[int, deque[Entry]] = {}
        self._next: dict[int, int] = {}  # the offset to commit when every entry read is done

    def add(self, partition: int, offset: int) -> Entry:
        """Track a record just read; return its entry (mark it done later)."""
        entry = Entry(offset)
        self._entries.setdefault(partition, deque()).append(entry)
        self._next[partition] = offset + 1
        return entry

    def committable(self) -> dict[int, int]:
        """Return {partition: offset to commit}: the first record not yet done, or past the last one read."""
        offsets = {}
        for partition, entries in self._entries.items():
            while entries and entries[0].done:
                entries.popleft()
            offsets[partition] = entries[0].offset if entries else self._next[partition]
        return offsets

    def outstanding(self) -> int:
        """Return how many records are read and not yet done."""
        return sum(1 for entries in self._entries.values() for entry in entries if not entry.done)

    def forget(self, partitions: set[int]) -> None:
        """Drop partitions this member no longer owns (their entries, done later, change nothing)."""
        for partition in partitions:
            self._entries.pop(partition, None)
            self._next.pop(partition, None)


class Lane(Generic[_T]):
    """One customer's records in read order: only the first is being delivered."""
    __slots__ = ("key", "waiting")

    def __init__(self, key: Hashable) -> None:
        self.key, self.waiting = key, deque()


class Lanes(Generic[_T]):
    """A queue per customer: a customer's later record starts only once the earlier one is done."""

    def __init__(self) -> None:
        self._lanes: dict[Hashable, Lane[_T]] = {}

    def push(self, key: Hashable, item: _T) -> tuple[Lane[_T], bool]:
        """Queue an item on its customer's lane; return the lane and whether the item may start now."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(key)
        lane.waiting.append(item)
        return lane, len(lane.waiting) == 1

    def finish(self, lane: Lane[_T]) -> Optional[_T]:
        """Take the lane's first item as done; return the next one to start, if any."""
        if self._lanes.get(lane.key) is not lane:  # dropped by a rebalance meanwhile
            return None
        lane.waiting.popleft()
        if lane.waiting:
            return lane.waiting[0]
        del self._lanes[lane.key]
        return None

    def forget(self, partitions: set[int]) -> None:
        """Drop the lanes of partitions no longer owned (keys are (partition, customer))."""
        for key in [k for k in self._lanes if k[0] in partitions]:
            del self._lanes[key]
