"""What the peers share: their command line, their clock and the one JSON line they print."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

import orjson

from streams.settings import CAMPAIGNS_TOPIC, LEDGER_TOPIC, UPDATES_TOPIC

# The peers' output topics (created by the benchmark), apart from the worker's: the loop peer's by the worker's
# topic each stands for (it sends no coupons).
LOOP_TOPICS = {LEDGER_TOPIC: "bench-loop-ledger", UPDATES_TOPIC: "bench-loop-updates", CAMPAIGNS_TOPIC: "bench-loop-campaigns"}
QUIX_TOPIC = "bench-quix-effects"


class PeerClock:
    """Counts applied events and notes when the first and the latest were applied (time.monotonic seconds)."""

    def __init__(self) -> None:
        self.total = 0
        self.first: Optional[tuple[float, int]] = None
        self.last: Optional[tuple[float, int]] = None

    def applied(self, count: int) -> None:
        """Count events just applied."""
        if not count:
            return
        self.total += count
        self.last = (time.monotonic(), self.total)
        if self.first is None:
            self.first = self.last

    def rate(self, started_s: float) -> float:
        """Events/s from the first applied event (or batch) to the last, like the workers' figure.

        When one batch did everything, the time from `started_s` (the peer's start) is all there is.
        """
        if self.last is None:
            raise RuntimeError("no event was applied")
        first_s, first_total = self.first
        last_s, last_total = self.last
        if last_s > first_s:
            return (last_total - first_total) / (last_s - first_s)
        return last_total / (last_s - started_s)


def peer_arguments(description: str) -> argparse.Namespace:
    """Parse a peer's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--broker", required=True, help="bootstrap address host:port")
    parser.add_argument("--group", required=True, help="a fresh consumer group")
    parser.add_argument("--records", type=int, required=True, help="stop after this many input records")
    parser.add_argument("--state-dir", required=True, help="a fresh directory for the peer's RocksDB")
    return parser.parse_args()


def print_result(clock: PeerClock, started_s: float) -> None:
    """Print the peer's result as one JSON line on stdout (the benchmark reads the last line)."""
    sys.stdout.write(orjson.dumps({"applied": clock.total, "events_per_second": clock.rate(started_s)}).decode()
                     + "\n")
    sys.stdout.flush()
