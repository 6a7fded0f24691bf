"""A worker says what it is doing: a progress line every few seconds, one line with what it committed when
stopped, and no terminal escape codes in a redirected log."""
from __future__ import annotations

import pytest

from streams.kafka_log import high_watermarks
from streams.settings import INPUT_TOPIC
from tests.fixtures.kafka import wait_for
from tests.integration.oracles import distinct_valid_events, history, wait_until_applied

pytestmark = pytest.mark.broker


def fields(line: str) -> dict[str, str]:
    """Return the key=value fields of a text log line."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def pairs(value: str) -> dict[int, str]:
    """Parse a per-partition field such as `0:12,1:0`."""
    return {int(k): v for k, v in (item.split(":", 1) for item in value.split(","))}


def lines_with(log: str, event: str) -> list[dict[str, str]]:
    return [fields(line) for line in log.splitlines() if f"loyalty: {event} " in line]


def test_progress_lines_then_one_line_with_what_was_committed_on_sigterm(cluster):
    worker = cluster.worker("w1", extra_env={"LOYALTY_PROGRESS_SECONDS": "1"})
    lines = history(800, 60, seed=9)
    cluster.produce_lines(lines)
    applied = distinct_valid_events(lines)
    wait_until_applied(worker, applied)

    def drained():
        found = [f for f in lines_with(worker.log(), "progress") if f.get("events_applied") == str(applied)]
        return found and set(pairs(found[-1]["lag"]).values()) == {"0"} and found[-1]
    progress = wait_for(drained, 30, "a progress line with every event applied and no lag")
    assert float(progress["events_per_s"]) >= 0
    clocks = pairs(progress["clocks"])
    assert sorted(clocks) == [0, 1, 2, 3] and all(c.startswith("20") for c in clocks.values()), progress

    worker.stop()
    assert worker.proc.returncode == 0
    log = worker.log()
    stopped = lines_with(log, "worker stopped")
    assert len(stopped) == 1, log[-2000:]
    assert stopped[0]["events_applied"] == str(applied)
    assert stopped[0]["partitions"] == "0,1,2,3"
    assert stopped[0]["batch_in_flight"] == "none"  # stopped while idle
    ends = high_watermarks(cluster.settings.broker, INPUT_TOPIC)
    assert {p: int(o) for p, o in pairs(stopped[0]["committed"]).items()} == {p: e for p, e in ends.items() if e}
    assert "\x1b" not in log and "\b" not in log, repr(log[-500:])
