"""What `loyalty demo` does: a live loyalty engine on the embedded broker, from nothing, in about a minute."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import orjson

from streams.settings import CAMPAIGNS_TOPIC, DEFAULTS, DLQ_TOPIC, LEDGER_TOPIC, Settings
from tools.processes import start_worker, stop_process, wait_until
from tools.synthetic import synthetic_history

BAD_LINES = [b"not json at all", b'{"event_type": "order.shipped", "event_id": "bad-1"}',
             b'{"event_id": "bad-2", "event_type": "order.paid", "customer_id": "c", '
             b'"occurred_at": "2025-03-01T10:00:00Z", "payload": {"order_id": "o", "amount": "-5"}}']


def count_topic(settings: Settings, topic: str, field: str) -> Counter:
    """Count a topic's records by one JSON field."""
    from streams.kafka_log import read_topic  # here, so that `loyalty --help` starts without the Kafka clients
    return Counter(orjson.loads(record.value).get(field) for record in read_topic(settings.broker, topic))


class DemoError(RuntimeError):
    """The demo's worker died or did not catch up (the message says where its log is)."""


def run_demo(events: int, customers: int, seed: int, keep: bool, say: Callable[[str], None]) -> None:
    """Start the embedded broker and a worker, send a synthetic history, show the projections, stop."""
    # here, so that `loyalty --help` and the other commands start without the Kafka clients
    from tools.broker import EmbeddedBroker, create_topics, free_port
    from tools.produce import send_lines
    from tools.query import HttpSource

    workdir = Path(tempfile.mkdtemp(prefix="loyalty-demo-"))
    broker = EmbeddedBroker(log=workdir / "broker.log").start()
    settings = Settings(broker=broker.url, broker_kind="embedded", app_id=f"loyalty-demo-{os.getpid()}",
                        web_port=free_port(), partitions=DEFAULTS["partitions"])
    worker = None
    started = time.monotonic()
    failed = True  # until the end: a failure keeps the directory, whose worker log its message names
    try:
        say(f"[demo] embedded broker on {broker.url} (pid {broker.pid})")
        create_topics(settings.broker, settings.topic_partitions())
        worker = start_worker(settings, workdir / "data", workdir / "worker.log")
        # Without --keep the log is deleted at the end: naming it would send the reader to a missing file.
        log = f", log {workdir / 'worker.log'}" if keep else " (--keep keeps its log)"
        say(f"[demo] worker pid {worker.pid}, HTTP on :{settings.web_port}{log}")
        history = [orjson.dumps(doc) for doc in synthetic_history(events, customers, seed)]
        expected = sum(1 for line in history if b'"clock.tick"' not in line)
        sent = send_lines(settings, [*history, *BAD_LINES])
        say(f"[demo] sent {sent} events ({expected} customer events, {len(BAD_LINES)} bad lines, "
            f"the rest daily clock ticks)")
        source = HttpSource(f"http://127.0.0.1:{settings.web_port}", timeout_s=5)

        def caught_up():
            if worker.poll() is not None:
                raise DemoError(f"the worker exited with code {worker.returncode}; see {workdir / 'worker.log'}")
            try:
                stats = source.stats()
            except Exception:
                return None
            return stats if stats["events_applied"] >= expected else None

        try:
            stats = wait_until(caught_up, 120, "the worker to apply every event")
        except TimeoutError as exc:
            raise DemoError(f"{exc}; see {workdir / 'worker.log'}") from None
        elapsed = time.monotonic() - started
        say(f"[demo] applied {stats['events_applied']} events in {elapsed:.1f}s since start\n")
        _show(settings, source, stats, say)
        failed = False
    finally:
        if worker is not None:
            stop_process(worker)
        broker.stop()
        if not keep and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"\n[demo] stopped the worker and the broker; done in {time.monotonic() - started:.1f}s")


def _show(settings: Settings, source, stats: dict, say: Callable[[str], None]) -> None:
    """Print what the projections hold."""
    say(f"customers           {stats['customers']}")
    say("by status           " + ", ".join(f"{k} {v}" for k, v in stats["by_status"].items()))
    say("by tier             " + ", ".join(f"{k} {v}" for k, v in stats["by_tier"].items()))
    say("by value            " + ", ".join(f"{k} {v}" for k, v in stats["by_value"].items()))
    say(f"points outstanding  {stats['points_outstanding']}")
    ledger = count_topic(settings, LEDGER_TOPIC, "kind")
    say("ledger entries      " + ", ".join(f"{k} {v}" for k, v in sorted(ledger.items())))
    campaigns = count_topic(settings, CAMPAIGNS_TOPIC, "campaign")
    say("campaigns fired     " + (", ".join(f"{k} {v}" for k, v in sorted(campaigns.items())) or "none"))
    dlq = count_topic(settings, DLQ_TOPIC, "reason")
    say("dead letters        " + (", ".join(f"{k} {v}" for k, v in sorted(dlq.items())) or "none"))
    vip = source.segment("active", "vip") or source.segment("potential", "vip") or source.segment("active", None)
    if vip:
        view = source.customer(sorted(vip)[0])
        say(f"\nsample customer     {view['customer_id']}: {view['points_balance']} points, {view['tier']}, "
            f"{view['status']}, value {view['value']}, spend 12m {view['spend_12m']}, {view['events_applied']} events")
