"""The worker's fold loader: each partition's fold opened from its recovered table partition, and its store kept."""
from __future__ import annotations

from typing import Any

from projections.partition import PartitionFold
from schemas.policy import Policy
from schemas.timeutil import format_ms
from streams.logs import lifecycle
from streams.pipeline import OpenedFold
from streams.policy_source import choose_policies
from streams.settings import Settings
from streams.tables import TablePartitionStore


class TableFoldLoader:
    """Opens the folds of the customer table's partitions; keeps each open partition's store for the batch writes."""

    def __init__(self, customers: Any, settings: Settings) -> None:
        self.customers, self.settings = customers, settings
        self.stores: dict[int, TablePartitionStore] = {}

    def open_fold(self, partition: int, policy: Policy) -> OpenedFold:
        """Load a partition's clock, policies, due index and totals from its recovered store."""
        settings = self.settings
        store = self.stores[partition] = TablePartitionStore(self.customers, partition, clock=settings.clock)
        saved = store.saved_schedule = store.policy_schedule()
        schedule = choose_policies(saved, policy, settings.policy_file, settings.policy_wins)
        fold = PartitionFold(store, policy, clock_ms=store.clock_ms(), schedule=schedule)
        folded_until = store.next_offset()
        fold.load(store.states())
        lifecycle("partition loaded", partition=partition, customers=fold.totals.customers,
                  clock=format_ms(fold.clock_ms), due=len(fold.due), policy=fold.schedule.in_force.version)
        return OpenedFold(fold, folded_until)

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's store (opened again when the partition comes back)."""
        self.stores.pop(partition, None)
