"""The benchmark's backlog: a synthetic history with daily ticks, sent once to the input topic."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import orjson

from streams.kafka_log import high_watermarks
from streams.settings import INPUT_TOPIC, Settings
from tools.produce import send_lines
from tools.synthetic import synthetic_history

_SAY_EVERY = 20_000  # lines between two progress updates while producing


@dataclass
class Backlog:
    """What the input topic holds before any consumer runs."""
    events: int          # lines of the history (a tick is one line)
    customer_events: int  # lines that are not ticks
    records: int         # records in the topic (a tick is one record per partition)
    ends: dict[int, int]  # partition -> log end offset


def produce_backlog(settings: Settings, events: int, customers: int, seed: int,
                    report: Callable[[int, int], None] = lambda sent, total: None) -> Backlog:
    """Send a synthetic history of about `events` events for `customers` customers; return what the topic holds."""
    docs = list(synthetic_history(events, customers, seed))
    lines = [orjson.dumps(doc) for doc in docs]
    customer_events = sum(1 for doc in docs if doc["customer_id"] is not None)

    def counted() -> Iterator[bytes]:
        for number, line in enumerate(lines, 1):
            if number % _SAY_EVERY == 0:
                report(number, len(lines))
            yield line
    send_lines(settings, counted())
    ends = high_watermarks(settings.broker, INPUT_TOPIC)
    return Backlog(events=len(lines), customer_events=customer_events, records=sum(ends.values()), ends=ends)
