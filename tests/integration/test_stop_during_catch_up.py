"""Stops during a catch-up: late histories sent while the workers are down, then SIGINT, SIGTERM or kill -9
at a random moment while they fold them, in batches of the default size (5,000 events) that span far more
than the 7-day event-id memory. Counted once means: no event is the source of two ledger entries, every
balance equals its ledger sum, events_applied equals the distinct valid events, and `replay --verify` and
the in-process fold agree with what the workers published.

This is how a stop applied events twice before each state carried its input offset (README, "Guarantees").
LOYALTY_SOAK=1 runs 8 rounds of 60,000 late events per test instead of 3 of 30,000.
"""
from __future__ import annotations

import itertools
import signal
import time
from collections import defaultdict

import orjson
import pytest

from schemas.timeutil import DAY_MS
from streams.settings import LEDGER_TOPIC
from tests.fixtures.kafka import Cluster, Worker
from tests.integration.oracles import distinct_valid_events, history, log_records
from tests.integration.test_faults import (FAST_RESTART, SOAK, check_uninterrupted, note, seeded, stopped_cleanly,
                                           wait_all_applied, watch)
from tools.synthetic import START_MS, synthetic_history

pytestmark = pytest.mark.broker

ROUNDS, LATE_EVENTS = (8, 60_000) if SOAK else (3, 30_000)
MISSES_ALLOWED = 3  # rounds whose stop came after the catch-up, aimed again with a new late history
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
# Ledger kinds an event causes itself (expire and coupon_refund fall due with the clock, from any event).
CAUSED_BY_THE_EVENT = {"earn", "bonus", "redeem", "reverse", "adjust"}


def late_history(round_no: int, seed: int) -> list[bytes]:
    """A history of new customers ending months before the first one: every event far behind the clock."""
    end_ms = START_MS + (300 - 60 * round_no) * DAY_MS
    customers = LATE_EVENTS // 40
    return [orjson.dumps(doc) for doc in synthetic_history(LATE_EVENTS, customers, seed, ticks=False, end_ms=end_ms)]


def applied(workers: list[Worker]) -> int:
    """The group's events_applied, as the first worker that answers reports it (0 while none does)."""
    for worker in workers:
        try:
            return worker.stats()["events_applied"]
        except Exception:  # noqa: BLE001 - recovering or rebalancing
            continue
    return 0


def stop_mid_catch_up(workers: list[Worker], victim: Worker, sig: int, before: int, rng) -> tuple[bool, str]:
    """Stop the victim with sig at a random moment of the catch-up; return whether it landed in it, and what happened.

    The moment is after a random share (up to half) of the late events: a catch-up folds tens of thousands
    of events a second, too fast to aim at by time.
    """
    threshold = before + rng.randrange(1, LATE_EVENTS // 2)
    # The signal goes as soon as the point is seen: asking the stats again first let a loaded machine's
    # catch-up run nearly to its end in between.
    during = watch(workers, lambda: (count := applied(workers)) >= threshold and count, 180,
                   "the catch-up to pass a random point", interval_s=0.02)
    victim.proc.send_signal(sig)
    code = victim.proc.wait(90)
    # A loaded machine can answer the stats so late that the catch-up is nearly over when the signal goes:
    # the stop is still checked, but it does not count as one during the catch-up.
    landed = during < before + LATE_EVENTS * 0.9
    note(victim, f"{signal.Signals(sig).name} at events_applied={during}")
    if sig == signal.SIGKILL:
        return landed, f"{victim.name} kill -9 at {during}"
    assert code == 0 and stopped_cleanly(victim, sig, code), \
        f"{victim.name} exited {code} on {signal.Signals(sig).name}:\n{victim.log()[-3000:]}"
    stop_line = [line for line in victim.log().splitlines() if "worker stopped" in line][-1]
    assert "batch_in_flight=" in stop_line and "batch_in_flight=abandoned" not in stop_line, stop_line
    return landed, f"{victim.name} {signal.Signals(sig).name} at {during}: {stop_line.split('batch_in_flight=')[1].split()[0]}"


def assert_each_event_one_ledger_entry(cluster: Cluster) -> int:
    """No event is the source of two ledger entries of a kind it causes itself; return the entries checked."""
    entries: dict[tuple, set] = defaultdict(set)
    for _, _, _, _, value in log_records(cluster, LEDGER_TOPIC):
        entry = orjson.loads(value)
        if entry["kind"] in CAUSED_BY_THE_EVENT:
            entries[(entry["customer_id"], entry["source_event_id"], entry["kind"])].add(entry["entry_id"])
    twice = {source: ids for source, ids in entries.items() if len(ids) > 1}
    assert not twice, f"{len(twice)} events are the source of two ledger entries, e.g. {list(twice.items())[:5]}"
    return len(entries)


def catch_up_stops(cluster: Cluster, tmp_path, name: str, workers_count: int) -> None:
    rng = seeded(name)
    lines = history(3000, 150, seed=rng.randrange(1000))
    workers = [cluster.worker(f"w{n + 1}", extra_env=FAST_RESTART) for n in range(workers_count)]
    cluster.produce_lines(lines)
    wait_all_applied(workers, distinct_valid_events(lines), timeout_s=180)
    done, missed = [], []
    for round_no in itertools.count():
        if len(done) == ROUNDS:
            break
        assert len(missed) <= MISSES_ALLOWED, f"only {len(done)} of {round_no} stops landed during a catch-up: {missed}"
        for worker in workers:
            worker.stop()
        # Each round's own seed range: a seed drawn twice would resend a whole history as one already folded.
        late = late_history(round_no, seed=1000 * (round_no + 1) + rng.randrange(1000))
        cluster.produce_lines(late)  # while every worker is down
        before = distinct_valid_events(lines)
        lines += late
        for worker in workers:
            worker.start()
        victim = workers[rng.randrange(workers_count)]
        landed, what = stop_mid_catch_up(workers, victim, SIGNALS[len(done) % len(SIGNALS)], before, rng)
        (done if landed else missed).append(what)
        print("  stop" if landed else "  stop after the catch-up (aim again)", what)
        victim.start()
        if round_no % 2:  # and sometimes a second stop, seconds after the restart
            time.sleep(rng.uniform(1.0, 3.0))
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(30)
            note(victim, "kill -9 seconds after a restart")
            victim.start()
    wait_all_applied(workers, distinct_valid_events(lines), timeout_s=300)
    checked = assert_each_event_one_ledger_entry(cluster)
    check_uninterrupted(cluster, workers, lines, tmp_path / "replay")
    print(f"  {len(done)} stops during catch-ups: {done}; {len(missed)} after one: {missed}; "
          f"{checked} event-caused ledger entries, each once")


def test_stops_during_the_catch_up_of_late_histories_one_worker(cluster, tmp_path):
    catch_up_stops(cluster, tmp_path, "catch-up, one worker", workers_count=1)


def test_stops_during_the_catch_up_of_late_histories_two_workers(cluster, tmp_path):
    catch_up_stops(cluster, tmp_path, "catch-up, two workers", workers_count=2)
