"""`loyalty produce` skips a line over the broker's message size limit, names it, and still sends the rest."""
from __future__ import annotations

import orjson
import pytest

from tests.support.topics import read_topic

pytestmark = pytest.mark.broker

TWO_MB = 2 * 1024 * 1024


def visit(n: int) -> bytes:
    return orjson.dumps({"event_id": f"big-{n}", "event_type": "customer.visited", "customer_id": f"c{n}",
                         "occurred_at": "2026-01-02T00:00:00Z", "payload": {"channel": "app"}})


def test_an_oversize_line_is_skipped_and_reported_and_every_other_line_is_sent(cluster):
    huge = orjson.dumps({"event_id": "huge", "event_type": "customer.visited", "customer_id": "c0",
                         "occurred_at": "2026-01-02T00:00:00Z", "payload": {"channel": "x" * TWO_MB}})
    good = [visit(n) for n in range(1, 8)]
    path = cluster.workdir / "oversize.jsonl"
    path.write_bytes(b"\n".join([good[0], b"", huge, *good[1:]]) + b"\n")  # the huge one is line 3

    result = cluster.loyalty("produce", str(path))

    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert f"line 3: {len(huge):,} bytes is over the broker's message size limit; skipped" in stderr
    assert "Traceback" not in stderr
    sent = read_topic(cluster.settings.broker, "customer-events")
    assert sorted(m.value for m in sent) == sorted(good)
    assert {m.key for m in sent} == {f"c{n}".encode() for n in range(1, 8)}


def test_a_file_of_good_lines_still_exits_0(cluster):
    path = cluster.workdir / "good.jsonl"
    path.write_bytes(b"\n".join(visit(n) for n in range(3)) + b"\n")
    result = cluster.loyalty("produce", str(path))
    assert result.returncode == 0, result.stderr.decode()
    assert "skipped" not in result.stderr.decode()
