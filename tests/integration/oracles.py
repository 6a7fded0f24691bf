"""Scripted input and the checks that a live state equals an uninterrupted run (recovery, failover, replay tests).

The oracle is threefold: `loyalty replay --verify --json` (the pure fold of the input log against the
live state in the changelog), the loyalty-ledger topic (its points summed per customer, repeats of a
deterministic entry_id dropped, equal the live points_balance), and `/stats` events_applied (equal to the
number of distinct valid customer events sent).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Optional

import orjson

from schemas.validate import Rejection, validate_message
from streams.embedded import high_watermarks
from streams.settings import INPUT_TOPIC, LEDGER_TOPIC
from tests.fixtures.kafka import Cluster, Worker, wait_for
from tools.replay import read_log
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
    ends = high_watermarks(cluster.settings.broker, LEDGER_TOPIC)
    entries: dict[str, bytes] = {}
    repeats = 0
    for _, _, value in read_log(cluster.settings, LEDGER_TOPIC, ends):
        entry_id = orjson.loads(value)["entry_id"]
        if entry_id in entries:
            repeats += 1
            assert entries[entry_id] == value, f"ledger entry {entry_id} sent twice with different content"
        entries[entry_id] = value
    return {k: orjson.loads(v) for k, v in entries.items()}, repeats


def ledger_sums(entries: dict[str, dict]) -> dict[str, int]:
    """Sum the points of the ledger per customer."""
    sums: dict[str, int] = defaultdict(int)
    for entry in entries.values():
        sums[entry["customer_id"]] += entry["points"]
    return dict(sums)


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
    sums = ledger_sums(entries)
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
