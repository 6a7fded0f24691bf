"""Scripted input and the checks that a live state equals an uninterrupted run (recovery, failover, replay tests).

The oracle is threefold: `loyalty replay --verify --json` (the pure fold of the input log against the
live state in the changelog), the loyalty-ledger topic (its points summed per customer, repeats of a
deterministic entry_id dropped, equal the live points_balance), and `/stats` events_applied (equal to the
number of distinct valid customer events sent).
"""
from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Optional

import orjson

from projections.isolation import apply_isolated, fold_batch
from projections.partition import MemoryStore, PartitionFold
from projections.documents import customer_view
from schemas.policy import Policy, load_policy
from schemas.timeutil import DAY_MS, parse_rfc3339_ms
from schemas.validate import Rejection, validate_message, validate_record
from streams.kafka_log import LogRecord, high_watermarks, read_topic
from streams.settings import CAMPAIGNS_TOPIC, INPUT_TOPIC, LEDGER_TOPIC, OUTPUT_TOPICS, TOPIC_OF
from tests.fixtures.kafka import Cluster, Worker, wait_for
from tests.support.invariants import ledger_sums
from tools.store import ReplayStore
from tools.synthetic import synthetic_history

BAD_LINES = [b"not json at all", b'{"event_type": "order.paid", "customer_id": "c-bad"}', b"[1, 2, 3]"]


def history(events: int, customers: int, seed: int, duplicate_every: int = 97) -> list[bytes]:
    """Return a synthetic history as JSON lines, with some events sent twice (right away) and bad lines."""
    lines: list[bytes] = []
    for n, doc in enumerate(synthetic_history(events, customers, seed)):
        line = orjson.dumps(doc)
        lines.append(line)
        if doc["customer_id"] is not None and n % duplicate_every == 0:
            lines.append(line)  # a producer retry: same event_id, must change nothing
        if n % 1000 == 500:
            lines.append(BAD_LINES[(n // 1000) % len(BAD_LINES)])
    return lines


def split(lines: list[bytes], *fractions: float) -> list[list[bytes]]:
    """Cut lines into consecutive parts at these fractions of the whole (file order is kept)."""
    cuts = [0, *(int(len(lines) * f) for f in fractions), len(lines)]
    return [lines[a:b] for a, b in zip(cuts, cuts[1:])]


def _occurred_ms(doc: Optional[dict]) -> Optional[int]:
    """Return a document's occurred_at in epoch ms (None if it has none that parses)."""
    try:
        return parse_rfc3339_ms(doc["occurred_at"]) if doc else None
    except (KeyError, ValueError):
        return None


def twice_and_shuffled(lines: list[bytes], rng: random.Random,
                       window_ms: int = Policy().retention.event_id_days * DAY_MS) -> tuple[list[bytes], int]:
    """Shuffle each customer's events of their last (UTC) day among themselves, then send every line twice.

    The copy comes up to 30 lines later, but before any line whose occurred_at could move its partition's
    clock to the end of the original's event id window (`window_ms`): only a resend within that window is a
    duplicate (docs/rules.md), and 30 lines of a sparse stretch of history span more than 7 days.
    Return the lines and how many customers had their last day shuffled.
    """
    docs = []
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        docs.append(doc if isinstance(doc, dict) else None)
    occurred = [_occurred_ms(doc) for doc in docs]
    last_day: dict[str, int] = {}
    for doc, at_ms in zip(docs, occurred):
        if at_ms is not None and doc.get("customer_id"):
            last_day[doc["customer_id"]] = max(last_day.get(doc["customer_id"], at_ms // DAY_MS), at_ms // DAY_MS)
    positions: dict[str, list[int]] = defaultdict(list)
    for index, (doc, at_ms) in enumerate(zip(docs, occurred)):
        customer_id = doc.get("customer_id") if at_ms is not None else None
        if customer_id in last_day and at_ms // DAY_MS == last_day[customer_id]:
            positions[customer_id].append(index)
    shuffled = list(lines)
    changed = 0
    for indexes in positions.values():
        chosen = [lines[i] for i in indexes]
        if len(set(chosen)) < 2:  # (history() sends some events twice in a row)
            continue
        order = list(chosen)
        while order == chosen:  # a real permutation
            rng.shuffle(order)
        for index, line in zip(indexes, order):
            shuffled[index] = line
        changed += 1
    at_of = {line: at_ms for line, at_ms in zip(lines, occurred) if at_ms is not None}
    # The latest occurred_at up to each line: no partition's clock is past it once that line is folded.
    latest = list(itertools.accumulate((at_of.get(line, -1) for line in shuffled), max))
    copies = []
    for n, line in enumerate(shuffled):
        # A copy sorts after every line at or before its position: the last one it may follow is the last
        # whose `latest` is still inside the window.
        last = len(shuffled) if line not in at_of else bisect.bisect_left(latest, at_of[line] + window_ms) - 1
        copies.append((min(n + rng.uniform(0, 30), max(n, last)), 1, line))
    sent = sorted([(float(n), 0, line) for n, line in enumerate(shuffled)] + copies, key=lambda item: (item[0], item[1]))
    return [line for _, _, line in sent], changed


def key_of(line: bytes) -> Optional[bytes]:
    """Return the message key `loyalty produce` gives a line (its customer_id)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    customer_id = doc.get("customer_id") if isinstance(doc, dict) else None
    return customer_id.encode() if isinstance(customer_id, str) and customer_id else None


def distinct_valid_events(lines: Iterable[bytes]) -> int:
    """Count the valid customer events with distinct event ids (what events_applied must say)."""
    ids = set()
    for line in lines:
        event = validate_message(line, key_of(line) or b"")
        if not isinstance(event, Rejection) and event.customer_id is not None:
            ids.add((event.customer_id, event.event_id))
    return len(ids)


def customers_in(lines: Iterable[bytes]) -> set[str]:
    """Return the ids of the customers with at least one valid event."""
    out = set()
    for line in lines:
        event = validate_message(line, key_of(line) or b"")
        if not isinstance(event, Rejection) and event.customer_id is not None:
            out.add(event.customer_id)
    return out


def input_records(cluster: Cluster) -> int:
    """Count the records in customer-events (from the true log end, never ListOffsets)."""
    return sum(high_watermarks(cluster.settings.broker, INPUT_TOPIC).values())


def wait_until_applied(worker: Worker, expected: int, timeout_s: float = 90.0) -> dict:
    """Poll a worker's global /stats until events_applied reaches `expected`; fail if it goes past it."""
    def done():
        stats = worker.stats()
        assert stats["events_applied"] <= expected, f"more events applied than sent: {stats}"
        return stats if stats["events_applied"] == expected else None
    return wait_for(done, timeout_s, f"{worker.name} to apply {expected} events")


def ledger_entries(cluster: Cluster) -> tuple[dict[str, dict], int]:
    """Read the whole loyalty-ledger; return entries by entry_id and how many records were repeats.

    A repeat (at-least-once redelivery after a crash) must be the very same entry, byte for byte.
    """
    entries: dict[str, bytes] = {}
    repeats = 0
    for record in read_topic(cluster.settings.broker, LEDGER_TOPIC):
        value = record.value
        entry_id = orjson.loads(value)["entry_id"]
        if entry_id in entries:
            repeats += 1
            assert entries[entry_id] == value, f"ledger entry {entry_id} sent twice with different content"
        entries[entry_id] = value
    return {k: orjson.loads(v) for k, v in entries.items()}, repeats


def replay_verify(cluster: Cluster, out: Path) -> dict:
    """Run `loyalty replay --verify --json`; return its report (it must say identical, exit 0)."""
    result = cluster.loyalty("replay", "--verify", "--json", "--out", str(out), timeout_s=150)
    assert result.returncode == 0, (result.stdout.decode()[-3000:], result.stderr.decode()[-3000:])
    report = orjson.loads(result.stdout)
    assert report["verify"]["identical"] is True, report["verify"]["differences"][:5]
    return report


def assert_equals_uninterrupted_run(cluster: Cluster, worker: Worker, lines: list[bytes], out: Path,
                                    cli_samples: int = 2) -> dict:
    """Check the live state against the replay, the ledger and the events sent; return what was found."""
    expected_events = distinct_valid_events(lines)
    expected_customers = customers_in(lines)
    report = replay_verify(cluster, out)
    assert report["records"] == input_records(cluster)
    assert report["verify"]["customers_compared"] == len(expected_customers)
    stats = worker.stats()
    assert stats["events_applied"] == expected_events
    assert stats == report["stats"], "live totals differ from the replayed totals"

    entries, repeats = ledger_entries(cluster)
    sums = ledger_sums(entries.values())
    assert set(sums) <= expected_customers
    store = ReplayStore(out)
    try:
        replayed = {state.customer_id: state for state in store.states()}
    finally:
        store.close()
    assert set(replayed) == expected_customers
    mismatched = {}
    for customer_id in sorted(expected_customers):
        live = worker.get(f"/customers/{customer_id}")
        if not (live["points_balance"] == sums.get(customer_id, 0) == replayed[customer_id].points_balance):
            mismatched[customer_id] = (live["points_balance"], sums.get(customer_id, 0),
                                       replayed[customer_id].points_balance)
    assert not mismatched, f"(live, ledger, replay) balances differ: {dict(list(mismatched.items())[:10])}"
    busiest = Counter(entry["customer_id"] for entry in entries.values())
    for customer_id, _ in busiest.most_common(cli_samples):
        result = cluster.loyalty("query", "customer", customer_id, "--json", "--url", worker.url)
        assert result.returncode == 0, result.stderr.decode()
        assert orjson.loads(result.stdout)["points_balance"] == sums[customer_id]
    return {"stats": stats, "report": report, "ledger_entries": len(entries), "ledger_repeats": repeats}


# ---------------------------------------------------------------------------------------------------------------
# The outputs of an uninterrupted run, folded in this process from the input log (independent of `replay --verify`)
# ---------------------------------------------------------------------------------------------------------------

class InProcessFold:
    """What folding the whole input log in this process gives: states, output records, DLQ reasons.

    outputs: topic -> identity -> (partition, canonical JSON); the identity is the ledger's entry_id, the
    campaign's trigger_id, or (customer-updates have no id) the canonical JSON itself.
    """

    def __init__(self) -> None:
        self.states: dict = {}
        self.clocks_ms: dict[int, int] = {}
        self.policy_versions: dict[str, str] = {}  # customer -> the policy version of its partition at the end
        self.outputs: dict[str, dict[str, tuple[int, str]]] = {}
        self.rejections: Counter = Counter()   # reason -> records refused (validation or processing_error)
        self.refused: dict[tuple[int, int], str] = {}  # (partition, offset) -> reason
        self.records = 0


def canonical_json(record: dict) -> str:
    """Serialise a record with sorted keys, so that equal records compare equal whatever their key order."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def output_identity(topic: str, record: dict) -> str:
    """Return how an output record is told apart: its deterministic id, or its canonical JSON (updates)."""
    if topic == LEDGER_TOPIC:
        return record["entry_id"]
    if topic == CAMPAIGNS_TOPIC:
        return record["trigger_id"]
    return canonical_json(record)


def log_records(cluster: Cluster, topic: str) -> Iterable[LogRecord]:
    """Yield (partition, offset, timestamp_ms, key, value) of a whole topic, in log order per partition."""
    return read_topic(cluster.settings.broker, topic)


def _validator(policy):
    """Return validate(value, key, timestamp_ms) as the worker calls it, for the current schemas/ code."""
    return lambda value, key, timestamp_ms: validate_record(value, key, policy, timestamp_ms)


def _fold_partition(records: list, policy, validate):
    """Fold one partition's (offset, timestamp_ms, key, value) records; return (fold, effects, refused).

    The whole partition is one batch of projections.isolation.fold_batch, the worker's isolation: an event
    whose fold raises is refused as processing_error and the partition is folded again without it.
    """
    fold = PartitionFold(MemoryStore(), policy)

    def attempt(poisoned):
        effects: list = []
        refused: dict[int, str] = {}
        for offset, timestamp_ms, key, value in records:
            if offset in poisoned:
                refused[offset] = "processing_error"
                continue
            event = validate(value, key, timestamp_ms)
            if isinstance(event, Rejection):
                refused[offset] = event.reason
                continue
            effects.extend(apply_isolated(fold, event, offset)[1])
        return effects, refused
    effects, refused = fold_batch(fold, attempt)
    return fold, effects, refused


def fold_input_log(cluster: Cluster) -> InProcessFold:
    """Fold customer-events partition by partition in this process, as an uninterrupted worker would.

    Each partition is read in log order (clock.tick records are on every partition) and folded with
    projections.partition.PartitionFold; an event whose fold raises is refused (as the worker's
    processing_error: its batch rolled back and folded again without it). Effects are serialised
    with orjson exactly like the worker (streams.pipeline Pipeline._attempt), then made canonical.
    """
    policy = load_policy(cluster.settings.policy_file)
    validate = _validator(policy)
    by_partition: dict[int, list] = defaultdict(list)
    for partition, offset, timestamp_ms, key, value in log_records(cluster, INPUT_TOPIC):
        by_partition[partition].append((offset, timestamp_ms, key, value))
    result = InProcessFold()
    for partition, records in sorted(by_partition.items()):
        fold, effects, refused = _fold_partition(records, policy, validate)
        result.records += len(records)
        result.states.update(fold.store)
        result.clocks_ms[partition] = fold.clock_ms
        result.policy_versions.update(dict.fromkeys(fold.store, fold.schedule.in_force.version))
        for offset, reason in refused.items():
            result.refused[partition, offset] = reason
            result.rejections[reason] += 1
        for effect in effects:
            topic = TOPIC_OF.get(type(effect))
            if topic is None:
                continue  # a notice is only counted in the metrics
            value = orjson.dumps(effect.record)  # as the worker sends it
            record = orjson.loads(value)
            result.outputs.setdefault(topic, {})[output_identity(topic, record)] = (partition, canonical_json(record))
    return result


def expected_outputs(cluster: Cluster, folded: Optional[InProcessFold] = None) -> dict[str, set[str]]:
    """Return, per output topic, the identities of the records an uninterrupted run publishes.

    Ledger: entry ids; campaign-triggers: trigger ids; customer-updates: the distinct records as canonical JSON.
    """
    folded = folded if folded is not None else fold_input_log(cluster)
    return {topic: set(folded.outputs.get(topic, {})) for topic in OUTPUT_TOPICS.values()}


def published_outputs(cluster: Cluster) -> dict[str, dict[str, tuple[int, str]]]:
    """Read every output topic: identity -> (partition, canonical JSON); a repeat must be the same record."""
    found: dict[str, dict[str, tuple[int, str]]] = {}
    for topic in OUTPUT_TOPICS.values():
        records = found[topic] = {}
        for partition, offset, _, _, value in log_records(cluster, topic):
            record = orjson.loads(value)
            identity = output_identity(topic, record)
            seen = (partition, canonical_json(record))
            assert records.get(identity, seen) == seen, (
                f"{topic} {identity} published twice differently: {records[identity]} then {seen} (offset {offset})")
            records[identity] = seen
    return found


def assert_outputs_equal_uninterrupted_run(cluster: Cluster, folded: Optional[InProcessFold] = None) -> dict:
    """Check that the output topics hold exactly the records of an uninterrupted run (folded in process).

    Same identities (none missing, none extra), same content, same partition as the customer's input.
    Call it once the workers have committed the whole input (e.g. after replay_verify). Returns counts.
    """
    folded = folded if folded is not None else fold_input_log(cluster)
    published = published_outputs(cluster)
    problems = []
    counts = {}
    for topic, records in published.items():
        expected = folded.outputs.get(topic, {})
        missing = sorted(set(expected) - set(records))
        extra = sorted(set(records) - set(expected))
        different = sorted(i for i in set(expected) & set(records) if expected[i] != records[i])
        counts[topic] = len(expected)
        if missing or extra or different:
            problems.append(f"{topic}: {len(missing)} missing of {len(expected)} (e.g. {missing[:5]}), "
                            f"{len(extra)} extra (e.g. {extra[:5]}), {len(different)} different "
                            f"(e.g. {[(expected[i], records[i]) for i in different[:2]]})")
    assert not problems, "outputs differ from an uninterrupted run:\n" + "\n".join(problems)
    return counts


def assert_live_states_equal_fold(worker: Worker, folded: InProcessFold) -> None:
    """Check every customer's live projection (GET /customers/{id}) against the in-process fold."""
    different = {}
    for customer_id, state in sorted(folded.states.items()):
        live = worker.get(f"/customers/{customer_id}")
        expected = {**orjson.loads(orjson.dumps(customer_view(state))),
                    "policy_version": folded.policy_versions[customer_id]}
        if live != expected:
            different[customer_id] = {k: (live.get(k), v) for k, v in expected.items() if live.get(k) != v}
    assert not different, (f"{len(different)} live customers differ from the in-process fold (live, fold): "
                           f"{dict(list(different.items())[:5])}")
