"""A worker whose data dir is lost rebuilding its customers from the changelog: built directly, then timed."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import orjson

from bench.workers import BenchError, WorkerGroup
from projections.partition import MemoryStore, PartitionFold
from projections.state import CustomerState
from schemas.policy import Policy
from schemas.validate import Rejection, validate_document
from streams.settings import CLOCK_KEY, Settings
from tools.broker import create_topics
from tools.bulk_send import BY_KEY, BulkSender
from tools.synthetic import synthetic_history

TEMPLATES = 2_000  # customers folded from a synthetic history; the changelog repeats their states under new ids
_LOADED = re.compile(r"partition loaded .*?partition=(\d+) .*?customers=(\d+)")
_ASSIGNED = "partitions assigned"
_POLL_S = 0.1
_ID = "rebuilt-{:07d}"
_PLACEHOLDER = "rebuilt-#######"


class Rebuild(NamedTuple):
    """Seconds from the worker's start to its partitions assigned and to every partition loaded."""
    customers: int
    changelog_bytes: int
    build_s: float  # building and sending the changelog (not part of the rebuild)
    assigned_s: Optional[float]
    loaded_s: float
    cpu_s: Optional[float]  # the worker's CPU time by then (user + system; None without /proc)


def template_states(policy: Policy, count: int = TEMPLATES, seed: int = 5) -> tuple[list[CustomerState], int]:
    """Customers after a synthetic history of about ten events each, and the clock after it."""
    fold = PartitionFold(MemoryStore(), policy)
    for doc in synthetic_history(count * 10, count, seed):
        event = validate_document(doc)
        if not isinstance(event, Rejection):
            fold.apply(event)
    return list(fold.store.values()), fold.clock_ms


def changelog_records(templates: list[CustomerState], customers: int, partitions: int,
                      clock_ms: int) -> Iterator[tuple[int, Optional[bytes], Optional[int], bytes]]:
    """The records a worker writes for `customers` customers (the templates' states under new ids), then each
    partition's clock record, as the worker's batches end."""
    # Each template is encoded once under a placeholder id as long as the real ones, which replace it in the
    # bytes: the same record as encoding each state, whatever the encoding, at a fraction of the cost.
    encoded = []
    for state in templates:
        state.customer_id = _PLACEHOLDER
        encoded.append(state.to_bytes())
    placeholder = _PLACEHOLDER.encode()
    for number in range(customers):
        key = _ID.format(number).encode()
        yield number, key, BY_KEY, encoded[number % len(encoded)].replace(placeholder, key)
    clock = orjson.dumps({"clock_ms": clock_ms, "next_offset": None, "clock": "event"})
    for partition in range(partitions):
        yield customers + partition, CLOCK_KEY, partition, clock


def measure_rebuild(settings: Settings, workdir: Path, customers: int, policy: Policy, timeout_s: float,
                    report: Callable[[str], None] = lambda text: None) -> Rebuild:
    """Write a changelog of `customers` customers for a new group, then time its first worker's start (empty data dir)
    until it logs every partition loaded."""
    started = time.perf_counter()
    templates, clock_ms = template_states(policy)
    group = WorkerGroup(settings, workdir, 1, "rebuild")
    topic = Settings(app_id=group.app_id).changelog_topic
    create_topics(settings.broker, {topic: settings.partitions})
    sizes = [0]

    def counted() -> Iterator:
        for item in changelog_records(templates, customers, settings.partitions, clock_ms):
            sizes[0] += len(item[3])
            if item[0] % 50_000 == 0:
                report(f"changelog: {item[0]:,}/{customers:,} customers written")
            yield item
    BulkSender(settings, topic).run(counted())
    build_s = time.perf_counter() - started
    report(f"changelog of {customers:,} customers written in {build_s:.0f}s; worker starting")
    try:
        started = time.monotonic()
        group.start()
        assigned_s, loaded = _wait_loaded(group, settings.partitions, started, timeout_s, report)
        loaded_s = time.monotonic() - started
        cpu_s = _cpu_seconds(group.procs[0].pid)
    finally:
        group.stop()
    if sum(loaded.values()) != customers:
        raise BenchError(f"the worker loaded {sum(loaded.values()):,} customers, not {customers:,} "
                         f"(log: {group.logs[0]})")
    return Rebuild(customers, sizes[0], build_s, assigned_s, loaded_s, cpu_s)


def _cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds of a process so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_loaded(group: WorkerGroup, partitions: int, started: float, timeout_s: float,
                 report: Callable[[str], None]) -> tuple[Optional[float], dict[int, int]]:
    """Follow the worker's log until every partition is loaded; return when it was assigned, and the customers."""
    assigned_s: Optional[float] = None
    loaded: dict[int, int] = {}
    while len(loaded) < partitions:
        group.check_alive()
        elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            raise BenchError(f"{len(loaded)} of {partitions} partitions loaded in {timeout_s:.0f}s "
                             f"(log: {group.logs[0]})")
        text = group.logs[0].read_text(errors="replace") if group.logs[0].exists() else ""
        if assigned_s is None and _ASSIGNED in text:
            assigned_s = elapsed
        loaded = {int(p): int(n) for p, n in _LOADED.findall(text)}
        report(f"rebuilding: {len(loaded)}/{partitions} partitions loaded, {elapsed:.0f}s")
        time.sleep(_POLL_S)
    return assigned_s, loaded
