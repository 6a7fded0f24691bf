"""`loyalty worker` processes on the benchmark's backlog: steady events/s from their counters, peak RSS."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from streams.settings import Settings
from tools.broker import free_port
from tools.processes import start_worker, stop_process
from tools.query import HttpSource, QueryError

_POLL_S = 0.1  # /stats?scope=local costs the worker a few µs; the sample's time is when its answer arrives


class BenchError(RuntimeError):
    """A phase of the benchmark could not be measured (the reason goes into the table)."""


class Sample(NamedTuple):
    """Events applied over all workers at a moment (time.monotonic seconds)."""
    at_s: float
    applied: int


def steady_rate(samples: list[Sample]) -> float:
    """Events/s from the first sample that saw an applied event to the first that saw them all.

    The first batch's own time is unknown to a sampler, so it is left out; when one batch did everything
    (a tiny backlog), the rate is taken from the last sample that saw none.
    """
    done = samples[-1]
    first = next(s for s in samples if s.applied > 0)
    if first.at_s == done.at_s:
        zeros = [s for s in samples if s.applied == 0]
        if not zeros:
            raise BenchError("the backlog was applied before the first sample; give more --events")
        first = zeros[-1]
    return (done.applied - first.applied) / (done.at_s - first.at_s)


class WorkerGroup:
    """`count` workers of one fresh consumer group, each with its own port, data dir and log."""

    def __init__(self, settings: Settings, workdir: Path, count: int, name: str) -> None:
        self.settings = settings
        self.workdir = workdir
        self.app_id = f"bench-{name}-{os.getpid()}"
        self.ports = [free_port() for _ in range(count)]
        self.data_dirs = [workdir / f"data-{name}-{n}" for n in range(count)]
        self.logs = [workdir / f"worker-{name}-{n}.log" for n in range(count)]
        self.sources = [HttpSource(f"http://127.0.0.1:{port}", timeout_s=5) for port in self.ports]
        self.procs: list = []

    def start(self) -> "WorkerGroup":
        """Start the workers (event clock, no progress log lines)."""
        for port, data_dir, log in zip(self.ports, self.data_dirs, self.logs):
            settings = Settings(broker=self.settings.broker, broker_kind=self.settings.broker_kind,
                                partitions=self.settings.partitions, app_id=self.app_id, web_port=port)
            self.procs.append(start_worker(settings, data_dir, log, {"LOYALTY_PROGRESS_SECONDS": "0"}))
        return self

    def applied(self) -> Optional[int]:
        """Events applied over the group, or None while a worker does not answer (starting or busy)."""
        each = self.applied_each()
        return None if each is None else sum(each)

    def applied_each(self) -> Optional[list[int]]:
        """Events applied by each worker (its own partitions), or None while one does not answer."""
        counts = []
        for source in self.sources:
            try:
                counts.append(source.stats(local=True)["events_applied"])
            except (QueryError, KeyError, TypeError):
                return None
        return counts

    def wait_applied(self, expected: int, timeout_s: float,
                     report: Callable[[int, float], None] = lambda applied, elapsed: None) -> list[Sample]:
        """Sample the group until it has applied `expected` events; return the samples (the last has them all)."""
        started = time.monotonic()
        samples: list[Sample] = []
        while True:
            self.check_alive()
            applied = self.applied()
            now = time.monotonic()
            if applied is not None:
                samples.append(Sample(now, applied))
                report(applied, now - started)
                if applied >= expected:
                    return samples
            if now - started > timeout_s:
                raise BenchError(f"{len(self.procs)} worker(s) applied {samples[-1].applied if samples else 0} "
                                 f"of {expected} events in {timeout_s:.0f}s (logs: {self.logs[0].parent})")
            time.sleep(_POLL_S)

    def check_alive(self) -> None:
        """Fail if a worker has exited."""
        for proc, log in zip(self.procs, self.logs):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                raise BenchError(f"a worker exited with code {proc.returncode}: {' '.join(tail)[:300]}")

    def peak_rss_bytes(self) -> Optional[int]:
        """The largest peak resident set size of the group's workers so far (Linux /proc), or None."""
        peaks = []
        for proc in self.procs:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                return None
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
        return max(peaks) if peaks else None

    def stop(self) -> None:
        """Stop every worker of the group by PID."""
        for proc in self.procs:
            stop_process(proc)
