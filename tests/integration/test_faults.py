"""Faults: kill -9 (and SIGTERM, Ctrl-C) at random moments (also during recovery, also with the local state deleted), rebalances
between two workers, every event delivered twice and shuffled, floods of hostile input, and a producer far
faster than the worker. Each run must end in the state and the outputs of an uninterrupted run.

The oracles (tests/integration/oracles.py): `loyalty replay --verify` says identical, events_applied equals
the distinct valid events sent, every live balance equals the sum of its distinct ledger entries and the
replayed balance; and, independently of the engine's verify, the output topics hold exactly the ledger
entry ids, campaign trigger ids and distinct customer-updates records of the input log folded in this
process (`fold_input_log`, `expected_outputs`).

Environment:
  LOYALTY_SOAK=1           the longer variants: 4x the events, 40 kills per kill test, and the flood at full
                           size (10,000 malformed among 100,000 good); 200,000 events for backpressure.
                           Not run by default (CI runs the short variants: 20 kills in all).
  LOYALTY_FAULT_SEED=n     replay the kill schedule of an earlier run (each test prints its seed).

Workers here run with LOYALTY_SESSION_TIMEOUT_S=3 (streams/embedded.py): a restarted worker waits out
its dead predecessor's group session, 10 s by default, so each restart is about 4 s instead of 20 s.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Callable, Optional

import orjson
import pytest
from kafka import KafkaProducer

from streams.settings import DLQ_TOPIC, INPUT_TOPIC
from tests.fixtures.kafka import Cluster, Worker
from tests.integration.oracles import (
    assert_equals_uninterrupted_run, assert_live_states_equal_fold, assert_outputs_equal_uninterrupted_run,
    distinct_valid_events, fold_input_log, history, key_of, log_records, published_outputs, twice_and_shuffled,
)
from tests.support.promtext import samples, scrape
from tools.synthetic import synthetic_history

pytestmark = pytest.mark.broker

SOAK = os.environ.get("LOYALTY_SOAK", "") not in ("", "0", "false", "no")
SCALE = 4 if SOAK else 1
FAST_RESTART = {"LOYALTY_SESSION_TIMEOUT_S": "3"}
RSS_LIMIT_MB = 1536


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------

def fault_seed(test: str) -> int:
    """Return the test's seed, printed (LOYALTY_FAULT_SEED replays it)."""
    seed = int(os.environ.get("LOYALTY_FAULT_SEED") or random.SystemRandom().randrange(2**31))
    print(f"{test}: seed {seed} (LOYALTY_FAULT_SEED={seed} replays this schedule)")
    return seed


def seeded(test: str) -> random.Random:
    """Return the test's random generator from its printed seed."""
    return random.Random(fault_seed(test))


def rss_mb(worker: Worker) -> float:
    """Return the worker's resident set size in MB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{worker.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {worker.name}")


def note(worker: Worker, text: str) -> None:
    """Write a marker line into the worker's log (between two lives of the process)."""
    with open(worker.log_path, "a") as log:
        log.write(f"===== test: {text} at {time.strftime('%H:%M:%S')} =====\n")


def log_tail(worker: Worker, chars: int = 4000) -> str:
    return worker.log()[-chars:]


def stopped_cleanly(worker: Worker, sig: int, code: int) -> bool:
    """A clean stop by SIGINT or SIGTERM, whenever it came.

    Once the worker runs: exit 0 after its stop line. While it starts: one line, exit 128+sig (or, on
    Ctrl-C, ended by SIGINT itself as Python does after its clean-up). While Python loads the command:
    exit 128+sig at once, silently. Never a traceback.
    """
    life = worker.log()[worker.log_start:]
    if "Traceback" in life:
        return False
    if code == 0:
        return "worker stopped" in life
    said_stopped = "stopped while starting" in life or f"stopped ({signal.Signals(sig).name})" in life
    return (code == 128 + sig and (said_stopped or not life.strip())) or (code == -sig == -signal.SIGINT and said_stopped)


class Stalled(AssertionError):
    """The workers answer but make no progress: passed through watch() at once."""


def watch(workers: list[Worker], condition: Callable, timeout_s: float, what: str, interval_s: float = 0.2,
          rss: Optional[list] = None):
    """Poll condition() until truthy, failing at once if a worker exits; sample RSS into `rss` if given."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        for worker in workers:
            code = worker.proc.poll()
            assert code is None, f"worker {worker.name} exited ({code}) while waiting for {what}:\n{log_tail(worker)}"
            if rss is not None:
                try:
                    rss.append(rss_mb(worker))
                except FileNotFoundError:  # it has just exited: the next poll() says so
                    pass
        try:
            last = condition()
        except Stalled:
            raise
        except Exception as exc:  # a worker recovering answers 503, a rebalancing group errors
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name}:\n{log_tail(w, 2500)}\n--- {w.name} waits in:\n{w.waits()}" for w in workers)
            logs += f"\n--- broker log:\n{workers[0].cluster.broker_log()[-2000:]}" if workers else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{logs}")
        time.sleep(interval_s)


def ready(worker: Worker) -> dict:
    """This worker's own partitions are recovered and loaded (no peer involved)."""
    return worker.get("/stats?scope=local")


def wait_all_applied(workers: list[Worker], expected: int, timeout_s: float, rss: Optional[list] = None,
                     stalled_s: float = 45.0) -> dict:
    """Wait until every worker is ready and the group's events_applied is `expected` on each of them.

    Fails early when events_applied has not moved for `stalled_s` while the workers answer: events lost, or,
    above `expected`, events applied twice (a passing overshoot, e.g. counted by two workers, is waited out).
    """
    progress = {"applied": None, "since": time.monotonic()}

    def done():
        try:
            totals = [worker.stats() for worker in workers]
        except Exception:  # recovering or rebalancing: not a stall
            progress.update(applied=None, since=time.monotonic())
            raise
        applied = [t["events_applied"] for t in totals]
        if applied != progress["applied"]:
            progress.update(applied=applied, since=time.monotonic())
        elif time.monotonic() - progress["since"] > stalled_s:
            over = " (more than the distinct valid events sent)" if max(applied) > expected else ""
            raise Stalled(f"events_applied stuck at {applied} of {expected}{over} for {stalled_s:.0f}s: {totals}")
        return totals[0] if all(t == totals[0] and t["events_applied"] == expected for t in totals) else None
    return watch(workers, done, timeout_s, f"{[w.name for w in workers]} to apply {expected} events",
                 interval_s=0.25, rss=rss)


class SteadyProducer:
    """`loyalty produce -` fed by a thread at a steady rate (lines per second), as a shop's stream."""

    def __init__(self, cluster: Cluster, lines: list[bytes], rate: float) -> None:
        self.lines, self.rate = lines, rate
        self.written = 0
        self.proc = subprocess.Popen([sys.executable, "-m", "tools", "produce", "-"], env=cluster.env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=cluster.workdir)
        self.error: Optional[BaseException] = None
        self.rush = threading.Event()  # set by finish(): the rest of the stream is no stop's moment
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        step = max(1, int(self.rate / 20))  # 20 writes a second
        started = time.monotonic()
        try:
            for start in range(0, len(self.lines), step):
                delay = started + start / self.rate - time.monotonic()
                if delay > 0 and not self.rush.is_set():
                    self.rush.wait(delay)  # pacing the stream, not waiting for a condition
                self.proc.stdin.write(b"\n".join(self.lines[start:start + step]) + b"\n")
                self.proc.stdin.flush()
                self.written = min(start + step, len(self.lines))
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def finish(self, timeout_s: float = 120) -> None:
        """Write the lines left at once (the stops are over), and wait until the broker acknowledged them all."""
        self.rush.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the producer thread did not finish"
        assert self.error is None, f"feeding the producer failed: {self.error!r}"
        code = self.proc.wait(timeout_s)
        assert code == 0, self.proc.stderr.read().decode()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kill_schedule(rng: random.Random, kills: int, workers: int) -> list[dict]:
    """Plan the kills: whom, when (while running, or 1-3 s after the last restart), and whether to wipe.

    At least a quarter of the kills land during recovery and a quarter delete the local state.
    """
    plan = []
    for n in range(kills):
        plan.append({"when": "after_restart" if n % 4 == 1 else "running",
                     "wipe": n % 4 == 2 or rng.random() < 0.15})
    head, tail = plan[:1], plan[1:]
    rng.shuffle(tail)  # the first kill lands while running: there is no restart before it
    plan = head + tail
    for n, step in enumerate(plan):
        # Mostly kill -9; every third stop is a SIGTERM or a Ctrl-C (SIGINT), which must end as cleanly.
        step["signal"] = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL,
                          signal.SIGINT)[n % 6]
        step["takeover"] = False
        if workers == 1:
            step["victim"] = 0
        elif step["when"] == "after_restart" and rng.random() < 0.5:
            step["victim"] = plan[n - 1]["victim"]      # the one still recovering
        else:
            step["victim"] = n % 2 if rng.random() < 0.8 else rng.randrange(2)  # mostly the other one
            # Sometimes the victim stays down until the survivor has taken its partitions over: they move
            # there and back (with their state) instead of waiting for the restarted worker.
            step["takeover"] = rng.random() < 0.3
    return plan


def owns_everything(worker: Worker) -> bool:
    """Tell whether a worker is the group's only member (its local stats are the group's: no peer left)."""
    return worker.get("/stats?scope=local") == worker.stats()


def run_kills(workers: list[Worker], plan: list[dict], rng: random.Random) -> list[str]:
    """Stop (mostly kill -9) and restart workers along the plan; return what was done (also printed)."""
    done = []
    started_at = {worker.name: time.monotonic() for worker in workers}
    last_restart = time.monotonic()
    for n, step in enumerate(plan):
        victim = workers[step["victim"]]
        if step["when"] == "after_restart":
            delay = rng.uniform(1.0, 3.0)
            remaining = last_restart + delay - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)  # the random moment itself
            moment = f"{time.monotonic() - last_restart:.1f}s after a restart"
        else:
            watch(workers, lambda: all(ready(w) for w in workers), 120, "every worker to be ready")
            time.sleep(rng.uniform(0.1, 1.2))  # a random moment of normal processing
            moment = "while running"
        code = victim.proc.poll()
        assert code is None, f"worker {victim.name} exited by itself ({code}):\n{log_tail(victim)}"
        how = "kill -9" if step["signal"] == signal.SIGKILL else signal.Signals(step["signal"]).name
        victim.proc.send_signal(step["signal"])
        code = victim.proc.wait(90)
        if step["signal"] != signal.SIGKILL:
            assert stopped_cleanly(victim, step["signal"], code), f"{victim.name} exited {code} on {how}:\n{log_tail(victim)}"
        note(victim, f"{how} #{n + 1} ({moment})" + ("; data dir deleted" if step["wipe"] else ""))
        if step["wipe"]:
            shutil.rmtree(victim.data_dir, ignore_errors=True)
        if step["takeover"]:
            survivor = workers[1 - step["victim"]]
            watch([survivor], lambda: owns_everything(survivor), 60, f"{survivor.name} to take every partition over",
                  interval_s=0.5)
        done.append(f"#{n + 1} {how} {victim.name} {moment}{' +wipe' if step['wipe'] else ''}"
                    f"{' +takeover' if step['takeover'] else ''} "
                    f"(lived {time.monotonic() - started_at[victim.name]:.1f}s)")
        print("  kill", done[-1])
        victim.start()
        started_at[victim.name] = last_restart = time.monotonic()
    return done


def check_uninterrupted(cluster: Cluster, workers: list[Worker], lines: list[bytes], out) -> dict:
    """Every oracle: replay --verify, events_applied, balances = ledger, and outputs = in-process fold."""
    started = time.monotonic()
    found = assert_equals_uninterrupted_run(cluster, workers[0], lines, out)
    outputs = found["report"]["verify"].get("outputs")
    assert outputs is not None and outputs["identical"], outputs  # replay --verify compares the outputs too
    verified = time.monotonic()
    folded = fold_input_log(cluster)
    counts = assert_outputs_equal_uninterrupted_run(cluster, folded)
    assert_live_states_equal_fold(workers[-1], folded)
    print(f"  outputs as uninterrupted: {counts}; ledger {found['ledger_entries']} entries, "
          f"{found['ledger_repeats']} sent again after crashes (checked in {verified - started:.1f}s "
          f"+ {time.monotonic() - verified:.1f}s)")
    return found


def kill_test(cluster: Cluster, tmp_path, name: str, workers_count: int, kills: int, events: int, customers: int,
              rate: float) -> None:
    rng = seeded(name)
    lines = history(events, customers, seed=rng.randrange(1000))
    expected = distinct_valid_events(lines)
    workers = [cluster.worker(f"w{n + 1}", extra_env=FAST_RESTART) for n in range(workers_count)]
    watch(workers, lambda: all(ready(w) for w in workers), 90, "the workers to start")
    producer = SteadyProducer(cluster, lines, rate)
    try:
        plan = kill_schedule(rng, kills, workers_count)
        started = time.monotonic()
        run_kills(workers, plan, rng)
        print(f"  {kills} kills in {time.monotonic() - started:.0f}s; {producer.written}/{len(lines)} lines "
              f"written by then")
        producer.finish()
    finally:
        producer.close()
    started = time.monotonic()
    try:
        wait_all_applied(workers, expected, timeout_s=180)
        print(f"  all applied {time.monotonic() - started:.1f}s after the last kill")
        check_uninterrupted(cluster, workers, lines, tmp_path / "replay")
    except AssertionError as exc:
        raise AssertionError(f"{str(exc)[-6000:]}\n--- evidence:\n{lost_evidence(cluster, workers[0])}\n"
                             f"{order_evidence(cluster)}") from None


def order_evidence(cluster: Cluster, examples: int = 3) -> str:
    """Explain live states that differ from the in-process fold: the input records the workers never applied
    (offset ranges per partition, with when they were produced), and events applied out of log order (after
    events that follow them on the partition) with the partition clock they were judged at.

    The changelog shows when an event id first entered a customer's state; the partition's clock record
    written with it (last in the batch) shows the clock then.
    """
    try:
        return _order_evidence(cluster, examples)
    except Exception as exc:  # noqa: BLE001 - evidence gathering must not hide the failure
        return f"(no order evidence: {exc!r})"


def _order_evidence(cluster: Cluster, examples: int) -> str:
    from projections.state import CustomerState
    from schemas.timeutil import format_ms
    from streams.settings import CLOCK_KEY, PARTITION_KEYS
    folded = fold_input_log(cluster)
    writes: dict[bytes, list[tuple[int, int, CustomerState]]] = defaultdict(list)
    clocks: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> [(offset, clock_ms)]
    for partition, offset, _, key, value in log_records(cluster, cluster.settings.changelog_topic):
        if key == CLOCK_KEY and value:
            clocks[partition].append((offset, orjson.loads(value)["clock_ms"]))
        elif value and key not in PARTITION_KEYS:
            writes[key].append((partition, offset, CustomerState.from_bytes(value)))
    differing = [cid for cid, state in sorted(folded.states.items())
                 if not writes.get(cid.encode()) or writes[cid.encode()][-1][2] != state]
    lines = [f"{len(differing)} customers' live states (changelog) differ from the in-process fold: {differing[:10]}"]
    inputs: dict[bytes, list] = defaultdict(list)
    wanted = {cid.encode() for cid in differing}
    for partition, offset, timestamp_ms, key, value in log_records(cluster, INPUT_TOPIC):
        if key in wanted:
            doc = orjson.loads(value)
            inputs[key].append((partition, offset, doc["event_id"], doc["event_type"], doc["occurred_at"], timestamp_ms))
    # Never applied: in the fold's final state, not in the live one.
    lost: dict[int, list[tuple[int, Optional[int]]]] = defaultdict(list)
    for cid in differing:
        key = cid.encode()
        live_ids = set(writes[key][-1][2].seen_event_ids) if writes.get(key) else set()
        missing = set(folded.states[cid].seen_event_ids) - live_ids
        for partition, offset, event_id, _, _, timestamp_ms in inputs[key]:
            if event_id in missing:
                lost[partition].append((offset, timestamp_ms))
    for partition, offsets in sorted(lost.items()):
        offsets.sort()
        produced = [ts for _, ts in offsets if ts]
        lines.append(f"partition {partition}: {len(offsets)} customer events never applied, input offsets "
                     f"{offsets[0][0]}..{offsets[-1][0]} (e.g. {[o for o, _ in offsets[:12]]}), produced "
                     f"{format_ms(min(produced)) if produced else '?'} .. {format_ms(max(produced)) if produced else '?'}")
    # Applied out of order: after events that follow them on the partition.
    shown = 0
    for key in sorted(wanted):
        first: dict[str, tuple[int, int]] = {}  # event id -> (changelog partition, offset) of its first write
        for partition, offset, state in writes.get(key, []):
            for event_id in state.seen_event_ids:
                first.setdefault(event_id, (partition, offset))
        events = inputs[key]
        for n, (partition, offset, event_id, event_type, occurred_at, _) in enumerate(events):
            written = first.get(event_id)
            if written is None or shown >= examples:
                continue
            later = [e for e in events[n + 1:] if e[2] in first and first[e[2]][1] < written[1]]
            if later:
                shown += 1
                clock = min(((o, ms) for o, ms in clocks[written[0]] if o > written[1]), default=(None, None))
                lines.append(
                    f"{key.decode()}: {event_type} {event_id} (input p{partition} o{offset}, occurred {occurred_at}) "
                    f"applied out of order: first in the changelog at o{written[1]}, partition clock then "
                    f"{format_ms(clock[1]) if clock[1] else '?'}; after {len(later)} later events, e.g. "
                    f"{later[0][2]} (input o{later[0][1]}, changelog o{first[later[0][2]][1]})")
    return "\n".join(lines)


def lost_evidence(cluster: Cluster, worker: Worker, examples: int = 5) -> str:
    """Describe what is missing from the live state (per customer) and from the output topics."""
    try:
        return _lost_evidence(cluster, worker, examples)
    except Exception as exc:  # noqa: BLE001 - evidence gathering must not hide the failure
        return f"(no evidence of losses: {exc!r})"


def _lost_evidence(cluster: Cluster, worker: Worker, examples: int) -> str:
    folded = fold_input_log(cluster)
    fewer = {}
    for customer_id, state in sorted(folded.states.items()):
        try:
            live = worker.get(f"/customers/{customer_id}")["events_applied"]
        except Exception as exc:  # noqa: BLE001 - evidence gathering must not hide the failure
            live = repr(exc)[:80]
        if live != state.events_applied:
            fewer[customer_id] = (live, state.events_applied)
    published = published_outputs(cluster)
    lines = [f"customers whose live events_applied differs from the in-process fold (live, fold): {len(fewer)}, "
             f"e.g. {dict(list(fewer.items())[:examples])}"]
    for topic, records in published.items():
        expected = folded.outputs.get(topic, {})
        missing = sorted(set(expected) - set(records))
        lines.append(f"{topic}: {len(missing)} of {len(expected)} missing, e.g. {missing[:examples]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# 1. kill -9 at random moments
# --------------------------------------------------------------------------------------------------------------

def test_random_kill_9_of_a_single_worker(cluster, tmp_path):
    """One worker, killed at random moments while a history streams in; sometimes during recovery,
    sometimes with its RocksDB deleted before the restart."""
    kill_test(cluster, tmp_path, "single worker", workers_count=1, kills=12 if not SOAK else 40,
              events=7000 * SCALE, customers=350 * SCALE, rate=170)


def test_random_kill_9_of_two_workers_with_rebalances(cluster, tmp_path):
    """Two workers; one is killed and restarted, then mostly the other, sometimes while the group is still
    rebalancing after the last restart: partitions move back and forth with their state."""
    kill_test(cluster, tmp_path, "two workers", workers_count=2, kills=8 if not SOAK else 40,
              events=9000 * SCALE, customers=400 * SCALE, rate=180)


# --------------------------------------------------------------------------------------------------------------
# 2. every event delivered twice, each customer's last day shuffled
# --------------------------------------------------------------------------------------------------------------

def applied_counts(cluster: Cluster, worker: Worker, lines: list[bytes], seed: int) -> str:
    """Tell an event lost from a copy applied again: the events sent, those on the topic, the worker's outcomes."""
    try:
        on_topic = distinct_valid_events(record.value for record in log_records(cluster, INPUT_TOPIC))
        outcomes: Counter = Counter()
        for (name, labels), count in samples(scrape(worker.url)).items():
            if name == "loyalty_events_total":
                outcomes[dict(labels)["outcome"]] += int(count)
    except Exception as exc:  # noqa: BLE001 - the failure being reported matters more than these counts
        return f"seed {seed}: counts unavailable ({exc!r})"
    return (f"seed {seed}: {len(lines)} lines sent holding {distinct_valid_events(lines)} distinct valid events; "
            f"{on_topic} distinct valid events on {INPUT_TOPIC}; the worker's outcomes {dict(outcomes)}")


def test_every_event_twice_and_each_customers_last_day_shuffled(cluster, tmp_path):
    seed = fault_seed("twice and shuffled")
    rng = random.Random(seed)
    original = history(6000 * SCALE, 300 * SCALE, seed=rng.randrange(1000))
    lines, shuffled_customers = twice_and_shuffled(original, rng)
    assert shuffled_customers >= 8, "the history should give customers several events on their last day"
    assert len(lines) == 2 * len(original)
    expected = distinct_valid_events(lines)
    assert expected == distinct_valid_events(original)
    worker = cluster.worker("w1")
    cluster.produce_lines(lines)
    try:
        wait_all_applied([worker], expected, timeout_s=120)
    except AssertionError as failure:
        failure.add_note(applied_counts(cluster, worker, lines, seed))
        raise
    found = check_uninterrupted(cluster, [worker], lines, tmp_path / "replay")
    # Every copy is on the log and was seen: the duplicates are counted as such, never applied.
    assert found["report"]["records"] >= len(lines)
    print(f"  {shuffled_customers} customers with their last day shuffled, {len(lines)} lines sent")


# --------------------------------------------------------------------------------------------------------------
# 3. a flood of hostile input among good events
# --------------------------------------------------------------------------------------------------------------

TWO_MB = 2 * 1024 * 1024
BIG_INT = 9223372036854775807


def _event(event_id: str, event_type: str, customer_id, occurred_at: str = "2025-06-01T10:00:00Z",
           **payload) -> dict:
    return {"event_id": event_id, "event_type": event_type, "customer_id": customer_id,
            "occurred_at": occurred_at, "schema_version": 1, "payload": payload}


def hostile_records(count: int, rng: random.Random) -> list[tuple[str, Optional[bytes], bytes]]:
    """Return (kind, key, value) of `count` malformed records (every value distinct), in a random order.

    Kinds and shares: not JSON, non-UTF-8 bytes, NUL bytes (raw, and escaped in a customer id), 500
    distinct unknown event types, a few 2 MB strings, depth-10,000 nested JSON, missing fields, amounts
    "1e309", occurred_at in year 9999 and 0001, points 9223372036854775807.
    """
    out: list[tuple[str, Optional[bytes], bytes]] = []
    dumps = orjson.dumps

    def add(kind: str, value: bytes, key: Optional[bytes] = None) -> None:
        out.append((kind, key, value))

    for n in range(500):  # 500 distinct unknown event types
        add("unknown_event_type", dumps(_event(f"fl-u{n}", f"custom.unknown_{n}", f"flood-{n % 50}")),
            f"flood-{n % 50}".encode())
    for n in range(5):  # a few 2 MB strings, in a string field that has a length limit and in some that do not
        big = "x" * TWO_MB
        add("2mb_string", [
            dumps(_event(big, "customer.visited", f"flood-big{n}")),
            dumps(_event(f"fl-big{n}", "points.adjusted", f"flood-big{n}", points=10, reason=big)),
            dumps(_event(f"fl-big{n}", "customer.visited", f"flood-big{n}", channel=big)),
            b'"' + big.encode() + b'"',
            dumps(_event(f"fl-big{n}", "redemption.requested", f"flood-big{n}", redemption_id="r1", points=5,
                         reward=big)),
        ][n], f"flood-big{n}".encode())
    rest = count - len(out)
    kinds = ["not_json", "non_utf8", "nul", "nested", "missing_field", "amount_1e309", "year_9999_0001",
             "points_int64_max"]
    for n in range(rest):
        kind, variant = kinds[n % len(kinds)], (n // len(kinds)) % 2
        customer = f"flood-{n % 200}"
        key: Optional[bytes] = customer.encode()
        if kind == "not_json":
            value, key = f"not json {n} {{".encode(), None
        elif kind == "non_utf8":
            value, key = b"\xff\xfe" + str(n).encode() + b" \xc3\x28 \x80\x81 {\"event_id\": \"\xe9\"}", None
        elif kind == "nul":
            if variant:
                value, key = dumps(_event(f"fl-n{n}", "customer.visited", customer))[:-1] + b"\x00}", None
            else:
                value, key = dumps(_event(f"fl-n{n}", "customer.visited", f"flood\x00{n}")), f"flood\x00{n}".encode()
        elif kind == "nested":
            value, key = b'{"event_id": "fl-d%d", "payload": ' % n + b"[" * 10_000 + b"]" * 10_000 + b"}", None
        elif kind == "missing_field":
            doc = _event(f"fl-m{n}", "order.paid", customer, order_id=f"o{n}", amount="10.00")
            field = ["event_id", "customer_id", "occurred_at", "payload"][(n // len(kinds)) % 4]
            del doc[field]
            if field == "customer_id":
                key = None
            value = dumps(doc)
        elif kind == "amount_1e309":
            value = dumps(_event(f"fl-a{n}", "order.paid", customer, order_id=f"o{n}", amount="1e309"))
        elif kind == "year_9999_0001":
            year = "9999-12-31T23:59:59Z" if variant else "0001-01-01T00:00:00Z"
            value = dumps(_event(f"fl-y{n}", "customer.checked_in", customer, occurred_at=year))
        else:  # points_int64_max: a credit and a debit that leave 64 bits
            points = BIG_INT if variant else -BIG_INT
            value = dumps(_event(f"fl-p{n}", "points.adjusted", customer, points=points, reason="flood"))
        add(kind, value, key)
    rng.shuffle(out)
    assert len({value for _, _, value in out}) == len(out)
    return out


# The reasons each kind may have in the DLQ.
FLOOD_REASONS = {
    "not_json": {"invalid_json"}, "non_utf8": {"invalid_json"}, "nested": {"invalid_json"},
    "unknown_event_type": {"unknown_event_type"}, "missing_field": {"missing_field"},
    "nul": {"invalid_json", "invalid_field"},            # a raw NUL breaks the JSON; an escaped one the id
    "2mb_string": {"invalid_field", "not_an_object"},    # too long a field; one is a bare 2 MB JSON string
    "amount_1e309": {"invalid_field"},                   # over the amount bound
    "year_9999_0001": {"invalid_field", "occurred_at_in_future"},  # outside the accepted years
    "points_int64_max": {"invalid_field"},               # over the points bound
}


def test_flood_of_malformed_input_among_good_events(cluster):
    rng = seeded("flood")
    good_events, bad_count = (100_000, 10_000) if SOAK else (20_000, 2_000)
    good = [orjson.dumps(doc) for doc in synthetic_history(good_events, good_events // 20, rng.randrange(1000))]
    expected = distinct_valid_events(good)
    bad = hostile_records(bad_count, rng)
    kind_of = {value: kind for kind, _, value in bad}
    assert not kind_of.keys() & set(good)

    # Interleave: the bad records at random places among the good ones (good ones keep their order).
    slots = sorted(rng.randrange(len(good) + 1) for _ in bad)
    worker = cluster.worker("w1")
    watch([worker], lambda: ready(worker), 90, "the worker to start")
    producer = KafkaProducer(bootstrap_servers=cluster.settings.bootstrap_servers, acks="all", linger_ms=5,
                             max_request_size=8 * 1024 * 1024,
                             max_in_flight_requests_per_connection=1)
    partitions = sorted(producer.partitions_for(INPUT_TOPIC))
    try:
        b = 0
        for index in range(len(good) + 1):
            while b < len(bad) and slots[b] == index:
                _, key, value = bad[b]
                producer.send(INPUT_TOPIC, key=key, value=value)
                b += 1
            if index < len(good):
                line = good[index]
                if b'"clock.tick"' in line:
                    for partition in partitions:
                        producer.send(INPUT_TOPIC, value=line, partition=partition)
                else:
                    producer.send(INPUT_TOPIC, key=key_of(line), value=line)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)

    rss: list[float] = []
    wait_all_applied([worker], expected, timeout_s=240, rss=rss)
    inputs = {(p, o): value for p, o, _, _, value in log_records(cluster, INPUT_TOPIC)}
    bad_sources = {source: kind_of[value] for source, value in inputs.items() if value in kind_of}
    assert len(bad_sources) == len(bad), "every hostile record should be on the input log once"

    def dlq_records() -> dict[tuple[int, int], dict]:
        records = (orjson.loads(value) for *_, value in log_records(cluster, DLQ_TOPIC))
        return {(r["source"]["partition"], r["source"]["offset"]): r for r in records}
    try:
        dlq = watch([worker], lambda: (lambda found: found if set(bad_sources) <= set(found) else None)(dlq_records()),
                    60, "every hostile record in the DLQ", interval_s=1, rss=rss)
    except AssertionError:
        assert worker.proc.poll() is None, f"the worker exited ({worker.proc.poll()}):\n{log_tail(worker)}"
        dlq = dlq_records()  # reported below, kind by kind
    by_kind = Counter((kind, dlq[source]["reason"] if source in dlq else "NOT IN THE DLQ")
                      for source, kind in bad_sources.items())
    print("  DLQ by (kind, reason):")
    for (kind, reason), count in sorted(by_kind.items()):
        print(f"    {kind:20} {reason:28} {count}")
    print(f"  worker RSS: max {max(rss):.0f} MB over {len(rss)} samples")
    missing = {kind: count for (kind, reason), count in by_kind.items() if reason == "NOT IN THE DLQ"}
    assert not missing, f"hostile records not in the DLQ (accepted as valid?): {missing}"
    good_in_dlq = set(dlq) - set(bad_sources)
    assert not good_in_dlq, f"{len(good_in_dlq)} good records in the DLQ, e.g. " \
                            f"{[(s, dlq[s]['error'], inputs.get(s, b'')[:200]) for s in sorted(good_in_dlq)[:3]]}"
    not_kept = [source for source in bad_sources if not dlq_keeps(dlq[source], inputs[source])]
    assert not not_kept, f"DLQ records without their original bytes: {[dlq[s] for s in not_kept[:2]]}"
    wrong = {(kind, reason): count for (kind, reason), count in by_kind.items()
             if FLOOD_REASONS[kind] is not None and reason not in FLOOD_REASONS[kind]}
    assert not wrong, f"unexpected DLQ reasons: {wrong}"
    assert worker.proc.poll() is None
    assert max(rss) < RSS_LIMIT_MB, f"worker RSS reached {max(rss):.0f} MB"
    assert worker.stats()["events_applied"] == expected


def dlq_keeps(record: dict, original: bytes) -> bool:
    """Tell whether a DLQ record holds the original bytes (or, when cut, their start and their digest)."""
    import base64
    import hashlib
    raw = record["raw"].encode() if record["raw_encoding"] == "utf-8" else base64.b64decode(record["raw"])
    if record.get("raw_truncated"):
        return (original.startswith(raw) and record["raw_bytes"] == len(original)
                and record["raw_sha256"] == hashlib.sha256(original).hexdigest())
    return raw == original


# --------------------------------------------------------------------------------------------------------------
# 4. backpressure: a producer far faster than the worker
# --------------------------------------------------------------------------------------------------------------

def consumer_lag(worker: Worker) -> dict[str, float]:
    """Return loyalty_consumer_lag by partition from the worker's /metrics."""
    from tests.support.promtext import samples, scrape, series
    return series(samples(scrape(worker.url)), "loyalty_consumer_lag", "partition")


def test_backpressure_a_producer_far_faster_than_the_worker(cluster):
    events = 200_000 if SOAK else 25_000
    lines = [orjson.dumps(doc) for doc in synthetic_history(events, events // 25, seed=31)]
    expected = distinct_valid_events(lines)
    worker = cluster.worker("w1")
    watch([worker], lambda: ready(worker), 90, "the worker to start")
    rss: list[float] = []
    applied_when_produced: list[int] = []
    producing = threading.Thread(target=lambda: (cluster.produce_lines(lines),
                                                 applied_when_produced.append(worker.stats()["events_applied"])))
    producing.start()
    try:
        watch([worker], lambda: not producing.is_alive(), 120, "the producer to send everything", rss=rss)
    finally:
        producing.join()
    assert applied_when_produced, "the producer failed (see the log above)"
    print(f"  {len(lines)} lines produced; the worker had applied {applied_when_produced[0]} of {expected} by then")
    wait_all_applied([worker], expected, timeout_s=240, rss=rss)
    # The lag gauge is refreshed every 5 s from the fetch high watermark: it must drain to 0 everywhere.
    lags = watch([worker], lambda: (lambda lag: lag if lag and not any(lag.values()) else None)(consumer_lag(worker)),
                 30, "the consumer lag to drain to 0", interval_s=0.5, rss=rss)
    print(f"  worker RSS: max {max(rss):.0f} MB over {len(rss)} samples; lag {lags}")
    assert max(rss) < RSS_LIMIT_MB, f"worker RSS reached {max(rss):.0f} MB"
