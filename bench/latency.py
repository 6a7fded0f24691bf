"""Latency from produce to ledger entry, at a fixed offered rate, on a running worker group."""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import orjson

from bench.workers import BenchError, WorkerGroup
from streams.kafka_log import high_watermarks, read_topic
from streams.settings import INPUT_TOPIC, LEDGER_TOPIC, Settings
from tools.produce import EventSender
from tools.synthetic import synthetic_history


class Latency(NamedTuple):
    """Milliseconds from an event's produce time to its first ledger entry's create time."""
    p50_ms: float
    p99_ms: float
    samples: int
    offered_per_s: float


def measure_latency(settings: Settings, group: WorkerGroup, rate_per_s: float, seconds: float, seed: int,
                    report: Callable[[str], None] = lambda text: None) -> Latency:
    """Send new customers' events at `rate_per_s` for `seconds` to a caught-up group; time each ledger entry.

    Both ends are Kafka record timestamps taken by the clients on this machine: the producer's at send(),
    the worker's when it appends the ledger record to its batch.
    """
    count = max(1, int(rate_per_s * seconds))
    # New customers (another seed) in the backlog's time range: the partition clocks stay where they are.
    lines = [orjson.dumps(doc) for doc in synthetic_history(count, max(1, count // 10), seed, ticks=False)]
    before = group.applied()
    if before is None:
        raise BenchError("the workers do not answer")
    input_start = high_watermarks(settings.broker, INPUT_TOPIC)
    ledger_start = high_watermarks(settings.broker, LEDGER_TOPIC)
    _send_paced(settings, lines, rate_per_s, report)
    group.wait_applied(before + len(lines), timeout_s=120 + seconds,
                       report=lambda applied, _: report(f"{applied - before}/{len(lines)} applied"))
    sent_ms = {}
    for record in _read_from(settings, INPUT_TOPIC, input_start):
        sent_ms[orjson.loads(record.value)["event_id"]] = record.timestamp_ms
    latencies: dict[str, int] = {}
    for record in _read_from(settings, LEDGER_TOPIC, ledger_start):
        source = orjson.loads(record.value)["source_event_id"]
        if source in sent_ms:
            latency = record.timestamp_ms - sent_ms[source]
            latencies[source] = min(latency, latencies.get(source, latency))
    if not latencies:
        raise BenchError("no ledger entry came from the events sent")
    ordered = sorted(latencies.values())
    return Latency(_percentile(ordered, 0.50), _percentile(ordered, 0.99), len(ordered), rate_per_s)


def _send_paced(settings: Settings, lines: list[bytes], rate_per_s: float, report: Callable[[str], None]) -> None:
    """Send lines at rate_per_s, each at its own moment from the start (when late, at once until on time)."""
    sender = EventSender(settings)
    try:
        started = time.monotonic()
        for number, line in enumerate(lines):
            delay = started + number / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sender.send_raw(line)
            if number % 1000 == 0:
                report(f"sending at {rate_per_s:,.0f} events/s: {number}/{len(lines)}")
    finally:
        sender.close()


def _read_from(settings: Settings, topic: str, start: dict[int, int]):
    """Yield the records of topic from the offsets in `start` to its current end."""
    for record in read_topic(settings.broker, topic):
        if record.offset >= start.get(record.partition, 0):
            yield record


def _percentile(ordered: list[int], fraction: float) -> float:
    """The value below which `fraction` of the sorted samples lie (nearest rank)."""
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])
