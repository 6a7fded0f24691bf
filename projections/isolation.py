"""Fold a batch of a partition's log so that an event whose fold raises is refused and changes nothing."""
from __future__ import annotations

from typing import Callable, Optional, TypeVar

from projections.effects import Effect, Outcome
from projections.partition import PartitionFold
from schemas.events import EventBase

T = TypeVar("T")
Poisoned = dict[int, BaseException]  # input offset -> what its fold raised


class PoisonedRecord(Exception):
    """Folding a valid event raised: the batch is rolled back and folded again without this record."""

    def __init__(self, offset: int, error: BaseException) -> None:
        super().__init__(offset, error)
        self.offset, self.error = offset, error


def apply_isolated(fold: PartitionFold, event: EventBase, offset: int) -> tuple[Outcome, list[Effect]]:
    """Apply one event at its offset; a fold that raises becomes PoisonedRecord."""
    try:
        return fold.apply(event, offset)
    except Exception as exc:  # no input may stop a partition: the batch is folded again without it
        raise PoisonedRecord(offset, exc) from exc


def fold_batch(fold: PartitionFold, attempt: Callable[[Poisoned], T], poisoned: Optional[Poisoned] = None) -> T:
    """Fold a batch with `attempt` (one pass over its records, refusing those in `poisoned`) until a pass ends.

    A pass that raises PoisonedRecord is undone (PartitionFold.rollback: clock, due times, totals, and
    the store's unsaved states) and the batch is folded again without that record. The batch is whatever
    the caller passes over: a worker's fetch, or a partition's whole log for replay and the tests.
    """
    poisoned = {} if poisoned is None else poisoned
    while True:
        fold.begin_batch()
        try:
            return attempt(poisoned)
        except PoisonedRecord as poison:
            fold.rollback()
            poisoned[poison.offset] = poison.error
