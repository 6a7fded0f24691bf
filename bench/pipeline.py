"""End-to-end benchmark on the embedded broker: producer, raw consumer, in-process fold and workers, side by side."""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from projections.customer import DEFAULT_POLICY
from streams.embedded import high_watermarks
from streams.settings import INPUT_TOPIC, Settings
from tools.broker import EmbeddedBroker, create_topics, free_port
from tools.processes import start_worker, stop_process
from tools.produce import send_lines
from tools.query import HttpSource
from tools.replay import fold_log, log_reader, read_log, rebuild
from tools.synthetic import synthetic_history


def _applied(urls: list[str]) -> int:
    """Sum events_applied over workers (scope=local, so nothing is counted twice)."""
    total = 0
    for url in urls:
        try:
            total += HttpSource(url, timeout_s=5)._get("/stats?scope=local")["events_applied"]
        except Exception:
            pass
    return total


def run_workers(settings: Settings, workdir: Path, count: int, expected: int) -> tuple[float, float]:
    """Start `count` workers on the backlog; return (seconds from start to all applied, steady events/s)."""
    ports = [free_port() for _ in range(count)]
    app_settings = Settings(broker=settings.broker, broker_kind="embedded", partitions=settings.partitions,
                            app_id=f"bench-{count}-{os.getpid()}")
    procs = []
    started = time.monotonic()
    try:
        for n, port in enumerate(ports):
            worker_settings = Settings(broker=settings.broker, broker_kind="embedded", partitions=settings.partitions,
                                       app_id=app_settings.app_id, web_port=port)
            procs.append(start_worker(worker_settings, workdir / f"data-{count}-{n}", workdir / f"worker-{count}-{n}.log"))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        first_at = first_count = None
        while True:
            applied = _applied(urls)
            now = time.monotonic()
            if applied and first_at is None:
                first_at, first_count = now, applied
            if applied >= expected:
                steady = (applied - first_count) / (now - first_at) if now > first_at else float("nan")
                return now - started, steady
            if now - started > 900 or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not finish (applied {applied}/{expected}); see {workdir}")
            time.sleep(0.5)
    finally:
        for proc in procs:
            stop_process(proc)


def main() -> None:
    """Print a table of events/s for every stage, measured in one run on this machine."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    broker = EmbeddedBroker(log=workdir / "broker.log").start()
    settings = Settings(broker=broker.url, broker_kind="embedded", partitions=args.partitions)
    rows = []
    try:
        create_topics(settings.broker, settings.topic_partitions())
        lines = [orjson.dumps(doc) for doc in synthetic_history(args.events, args.customers, seed=11)]
        expected = sum(1 for line in lines if b'"clock.tick"' not in line)
        started = time.monotonic()
        send_lines(settings, lines)
        rows.append(("kafka-python producer", len(lines), time.monotonic() - started))

        ends = high_watermarks(settings.broker, INPUT_TOPIC)
        records = sum(ends.values())
        started = time.monotonic()
        count = sum(1 for _ in read_log(settings, INPUT_TOPIC, ends))
        rows.append(("raw consumer (aiokafka, replay's reader)", count, time.monotonic() - started))
        started = time.monotonic()
        fold_log(log_reader(settings, INPUT_TOPIC, ends), DEFAULT_POLICY)
        rows.append(("replay, one process", records, time.monotonic() - started))
        started = time.monotonic()
        rebuild(settings, DEFAULT_POLICY, None, progress=False)
        rows.append((f"replay, {min(os.cpu_count() or 1, args.partitions)} processes (loyalty replay)", records,
                     time.monotonic() - started))

        for count in args.workers:
            seconds, steady = run_workers(settings, workdir, count, expected)
            rows.append((f"{count} worker(s), start to all applied", records, seconds))
            rows.append((f"{count} worker(s), steady state", records, records / steady if steady else float("nan")))
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{args.events} synthetic events, {args.customers} customers, {args.partitions} partitions, "
          f"{os.cpu_count()} cores (broker, tools and workers share them)")
    base = rows[1][1] / rows[1][2]
    print(f"{'stage':<40}{'records':>10}{'seconds':>10}{'events/s':>12}{'vs raw':>8}{'target':>9}")
    for name, n, seconds in rows:
        rate = n / seconds
        target = "10,000" if "worker" in name else ("100,000" if name.startswith("replay") else "-")
        print(f"{name:<40}{n:>10}{seconds:>10.2f}{rate:>12,.0f}{rate / base:>8.3f}{target:>9}")


if __name__ == "__main__":
    main()
