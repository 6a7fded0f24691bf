"""A fold loader for tests that build a pipeline: each partition's fold made by a function."""
from __future__ import annotations

from typing import Callable, Optional

from projections.partition import PartitionFold
from schemas.policy import Policy
from streams.pipeline import OpenedFold


class FoldsFrom:
    """Opens each partition's fold with `make(partition)`; its states include the offsets in `folded_until`."""

    def __init__(self, make: Callable[[int], PartitionFold], folded_until: Optional[dict[int, int]] = None) -> None:
        self.make, self.folded_until = make, folded_until or {}

    def open_fold(self, partition: int, policy: Policy) -> OpenedFold:
        return OpenedFold(self.make(partition), self.folded_until.get(partition))
