"""Checkout commands over HTTP at a steady rate while events stream in: answers per second, p50 and p99."""
from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import orjson

from bench.latency import _percentile, _send_paced
from bench.workers import BenchError, WorkerGroup
from schemas.timeutil import format_ms
from streams.settings import Settings
from tools.produce import EventSender
from tools.synthetic import synthetic_history

COMMAND_RATE = 250        # commands/s offered: the issue asks for at least 200/s
STREAM_RATE = 500         # customer events/s sent meanwhile
TARGET_P99_MS = 100.0     # printed next to the figure, never asserted
_CUSTOMERS = 64           # who redeem, one point at a time, round robin
_THREADS = 32             # open loop: enough clients that a slow answer does not delay the next request


class CommandLatency(NamedTuple):
    """Answers per second and milliseconds from each command's scheduled moment to its answer."""
    per_s: float
    p50_ms: float
    p99_ms: float
    commands: int
    statuses: dict[int, int]
    streamed: int
    warmup_s: float


def measure_commands(settings: Settings, group: WorkerGroup, seconds: float, seed: int,
                     report: Callable[[str], None] = lambda text: None) -> CommandLatency:
    """Redeem a point at COMMAND_RATE for `seconds` on a caught-up worker while new events stream in; time each answer."""
    port = group.ports[0]
    customers = [f"bench-checkout-{n:03d}" for n in range(_CUSTOMERS)]
    _seed_points(settings, group, customers)
    # Commands carry the wall clock, the backlog ends in 2026-02: the first command of a partition moves its
    # clock by months and fires a one-off tick over every customer there, which is not what is timed.
    warm_started = time.monotonic()
    warm = _post_all(port, [(c, f"warm-{c}") for c in customers], COMMAND_RATE, report)
    warmup_s = time.monotonic() - warm_started
    if any(status != 200 for status, _ in warm):
        raise BenchError(f"warm-up commands answered {sorted({status for status, _ in warm})}")
    count = max(1, int(COMMAND_RATE * seconds))
    now_ms = int(time.time() * 1000)
    stream = [orjson.dumps(doc) for doc in synthetic_history(max(1, int(STREAM_RATE * seconds)), 100, seed,
                                                               ticks=False, end_ms=now_ms)]
    streamer = threading.Thread(target=_send_paced, args=(settings, stream, STREAM_RATE, lambda text: None))
    streamer.start()
    try:
        started = time.monotonic()
        answers = _post_all(port, [(customers[n % _CUSTOMERS], f"bench-{n}") for n in range(count)], COMMAND_RATE,
                            report)
        elapsed = time.monotonic() - started
    finally:
        streamer.join()
    statuses: dict[int, int] = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    answered = [ms for status, ms in answers if status in (200, 422)]
    if not answered:
        raise BenchError(f"no command was answered: {statuses}")
    ordered = sorted(answered)
    return CommandLatency(len(answered) / elapsed, _percentile(ordered, 0.50), _percentile(ordered, 0.99),
                          count, statuses, len(stream), warmup_s)


def _seed_points(settings: Settings, group: WorkerGroup, customers: list[str]) -> None:
    """Give each customer a million points, and wait until the worker applied them."""
    before = group.applied()
    if before is None:
        raise BenchError("the worker does not answer")
    sender = EventSender(settings)
    try:
        at = format_ms(int(time.time() * 1000) - 60_000)
        for customer in customers:
            sender.send_raw(orjson.dumps({"event_id": f"seed-{customer}", "event_type": "points.adjusted",
                                          "customer_id": customer, "occurred_at": at,
                                          "payload": {"points": 1_000_000, "reason": "bench"}}))
    finally:
        sender.close()
    group.wait_applied(before + len(customers), timeout_s=120)


def _post_all(port: int, commands: list[tuple[str, str]], rate_per_s: float,
              report: Callable[[str], None]) -> list[tuple[int, float]]:
    """POST each redemption at its own moment from the start; return (status, ms from that moment to the answer)."""
    local = threading.local()

    def post(number: int, customer: str, redemption_id: str, due: float) -> tuple[int, float]:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = orjson.dumps({"redemption_id": redemption_id, "points": 1})
        for attempt in (1, 2):  # a keep-alive connection the server closed is opened again (same id: idempotent)
            if not hasattr(local, "conn"):  # one keep-alive connection per client thread
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                local.conn.request("POST", f"/customers/{customer}/redemptions", body,
                                   {"Content-Type": "application/json"})
                response = local.conn.getresponse()
                response.read()
                break
            except (http.client.HTTPException, OSError):
                local.conn.close()
                del local.conn
                if attempt == 2:
                    raise
        if number % 250 == 0:
            report(f"{number}/{len(commands)} commands at {rate_per_s:,.0f}/s")
        # From the scheduled moment, not the send: a request queued behind slow ones counts its wait.
        return response.status, (time.monotonic() - due) * 1000

    started = time.monotonic()
    with ThreadPoolExecutor(_THREADS) as pool:
        futures = [pool.submit(post, n, customer, rid, started + n / rate_per_s)
                   for n, (customer, rid) in enumerate(commands)]
        return [future.result() for future in futures]
