"""Micro-benchmark: validation and evolve throughput on a synthetic history (not a test)."""
from __future__ import annotations

import argparse
import time
import zlib
from collections import Counter

import orjson

from projections.partition import MemoryStore, PartitionFold
from schemas.validate import validate_message
from streams.gc_tuning import tune_gc
from streams.settings import CAMPAIGNS_TOPIC, LEDGER_TOPIC, TOPIC_OF, UPDATES_TOPIC
from tools.synthetic import synthetic_history


def main() -> None:
    """Print a table of events/s for validation and for the fold, measured in one run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    tune_gc()  # the worker's collector settings: default collections over the kept events dominate otherwise

    raws = [orjson.dumps(doc) for doc in synthetic_history(args.events, args.customers, seed=7)]
    started = time.perf_counter()
    events = [validate_message(raw) for raw in raws]
    validate_s = time.perf_counter() - started

    folds = [PartitionFold(MemoryStore()) for _ in range(args.partitions)]
    kinds: Counter = Counter()
    started = time.perf_counter()
    for event in events:
        if event.customer_id is None:
            targets = folds  # a tick goes to every partition
        else:
            targets = [folds[zlib.crc32(event.customer_id.encode()) % args.partitions]]
        for fold in targets:
            outcome, effects = fold.apply(event)
            kinds[outcome.value] += 1
            for effect in effects:
                kinds[TOPIC_OF.get(type(effect))] += 1
    fold_s = time.perf_counter() - started

    n = len(events)
    print(f"history: {n} records ({kinds['applied']} applied, {kinds['tick']} tick deliveries), "
          f"{sum(len(f.store) for f in folds)} customers, {args.partitions} partitions")
    print(f"effects: {kinds[LEDGER_TOPIC]} ledger, {kinds[UPDATES_TOPIC]} updates, {kinds[CAMPAIGNS_TOPIC]} campaigns")
    print(f"{'stage':<28}{'seconds':>10}{'events/s':>14}{'target':>10}{'ratio':>8}")
    for stage, seconds, target in (("validate (orjson+fast path)", validate_s, None),
                                   ("evolve (PartitionFold)", fold_s, 100_000),
                                   ("validate + evolve", validate_s + fold_s, None)):
        rate = n / seconds
        ratio = f"{rate / target:.2f}" if target else "-"
        print(f"{stage:<28}{seconds:>10.2f}{rate:>14,.0f}{target or '-':>10}{ratio:>8}")


if __name__ == "__main__":
    main()
