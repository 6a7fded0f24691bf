"""The benchmark's backlog: a synthetic history with daily ticks, written to a JSON-lines file and sent once."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import orjson

from streams.kafka_log import high_watermarks
from streams.settings import INPUT_TOPIC, Settings
from tools.produce import read_lines, send_lines
from tools.synthetic import synthetic_history

_SAY_EVERY = 20_000  # lines between two progress updates while producing


@dataclass
class Backlog:
    """What the input topic holds before any consumer runs."""
    events: int          # lines of the history (a tick is one line)
    customer_events: int  # lines that are not ticks
    records: int         # records in the topic (a tick is one record per partition)
    ends: dict[int, int]  # partition -> log end offset
    produce_s: float = 0.0  # how long `loyalty produce`'s sending of the file took


def produce_backlog(settings: Settings, events: int, customers: int, seed: int, path: Path,
                    report: Callable[[int, int], None] = lambda sent, total: None) -> Backlog:
    """Write a synthetic history of about `events` events for `customers` customers to `path`, then send that file
    as `loyalty produce FILE` does, timed; return what the topic holds."""
    docs = list(synthetic_history(events, customers, seed))
    path.write_bytes(b"".join(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE) for doc in docs))
    customer_events = sum(1 for doc in docs if doc["customer_id"] is not None)

    def counted(lines: Iterator[bytes]) -> Iterator[bytes]:
        for number, line in enumerate(lines, 1):
            if number % _SAY_EVERY == 0:
                report(number, len(docs))
            yield line
    with open(path, "rb") as handle:
        started = time.perf_counter()
        send_lines(settings, counted(read_lines(handle)))
        seconds = time.perf_counter() - started
    ends = high_watermarks(settings.broker, INPUT_TOPIC)
    return Backlog(events=len(docs), customer_events=customer_events, records=sum(ends.values()), ends=ends,
                   produce_s=seconds)
