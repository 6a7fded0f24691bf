"""Garbage-collector settings of the long-running processes: the worker, replay and the benchmark's limits."""
from __future__ import annotations

import gc

# CPython's default (700, 10, 10) made a worker run frequent full collections over its long-lived
# objects: a large share of its CPU and the longest pauses between produce and ledger entry
# (docs/performance.md). What the
# fold allocates is freed by reference counting (it forms no cycles), so collecting rarely loses nothing.
GC_THRESHOLDS = (10_000, 20, 100)


def tune_gc() -> None:
    """Collect young objects less often and full collections rarely (call once, at process start)."""
    gc.set_threshold(*GC_THRESHOLDS)
