"""A worker stopped and restarted, or killed mid-stream and restarted without its local state, ends in the
state of an uninterrupted run: restored from the changelogs, no ledger total differs."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import orjson
import pytest
from kafka import KafkaAdminClient

from tests.fixtures.kafka import wait_for
from tools.verify import _committed_offsets
from tests.integration.oracles import (
    assert_equals_uninterrupted_run, distinct_valid_events, history, split, wait_until_applied,
)

pytestmark = pytest.mark.broker


def test_graceful_stop_and_restart_with_local_state_kept(cluster, tmp_path):
    lines = history(3000, 200, seed=11)
    before, after = split(lines, 0.5)
    worker = cluster.worker("w1")
    cluster.produce_lines(before)
    wait_until_applied(worker, distinct_valid_events(before))

    worker.stop()
    assert worker.proc.returncode is not None and worker.proc.returncode >= 0, "SIGTERM should stop it cleanly"
    assert any(worker.data_dir.rglob("CURRENT")), "the local RocksDB state should be kept"
    worker.start()
    cluster.produce_lines(after)
    wait_until_applied(worker, distinct_valid_events(lines))

    assert_equals_uninterrupted_run(cluster, worker, lines, tmp_path / "replay")
    assert "ConsistencyError" not in worker.log()


def test_kill_9_mid_stream_then_restart_with_local_state_deleted(cluster, tmp_path):
    lines = history(6000, 300, seed=12)
    warmup, streaming, later = split(lines, 0.15, 0.75)
    worker = cluster.worker("w1")
    cluster.produce_lines(warmup)
    applied_before = distinct_valid_events(warmup)
    wait_until_applied(worker, applied_before)

    # Send the next part in the background and kill -9 the worker while it folds it.
    producer = subprocess.Popen([sys.executable, "-m", "tools", "produce", "-"], env=cluster.env(),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=cluster.workdir)
    def feed() -> None:
        """Send the part at about 2,000 lines/s, slower than the worker folds, so the kill lands inside it."""
        for start in range(0, len(streaming), 100):
            producer.stdin.write(b"\n".join(streaming[start:start + 100]) + b"\n")
            producer.stdin.flush()
            time.sleep(0.05)
        producer.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        feeder.start()
        at_kill = wait_for(lambda: (lambda n: n if n >= applied_before + 200 else None)(
            worker.stats()["events_applied"]), 60, "the worker to be busy with the streamed part", interval_s=0.05)
        worker.kill()
    finally:
        feeder.join(60)
        assert producer.wait(60) == 0, producer.stderr.read().decode()
    assert at_kill < distinct_valid_events(warmup + streaming), "the kill should land mid-stream"
    assert worker.proc.returncode == -9

    shutil.rmtree(worker.data_dir)
    worker.start()
    cluster.produce_lines(later)
    wait_until_applied(worker, distinct_valid_events(lines), timeout_s=120)

    found = assert_equals_uninterrupted_run(cluster, worker, lines, tmp_path / "replay")
    print(f"ledger: {found['ledger_entries']} entries, {found['ledger_repeats']} re-sent after the crash")


def checked_in(n: int, customer: str = "c1") -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "event_type": "customer.checked_in", "customer_id": customer,
                         "occurred_at": f"2026-01-0{n}T10:00:00Z", "payload": {}})


@pytest.mark.parametrize("data_dir", ["kept", "deleted"])
def test_a_partition_never_committed_is_read_from_its_beginning_after_kill_9(cluster, data_dir):
    """Regression: the restarted worker started such a partition at its end, and skipped what was sent meanwhile."""
    worker = cluster.worker("w1", extra_env={"LOYALTY_COMMIT_INTERVAL_S": "3600"})  # no commit before the kill
    cluster.produce_lines([checked_in(1), checked_in(2), checked_in(3)])
    wait_until_applied(worker, 3)
    worker.kill()
    assert not committed_offsets(cluster), "the test needs a kill before the first commit"
    if data_dir == "deleted":
        shutil.rmtree(worker.data_dir)
    worker.start()
    cluster.produce_lines([checked_in(4)])  # sent while the worker rejoins the group
    wait_until_applied(worker, 4)
    customer = worker.get("/customers/c1")
    assert customer["points_balance"] == 20 and customer["events_applied"] == 4


def committed_offsets(cluster) -> dict:
    """Return the worker group's committed input offsets that are set."""
    admin = KafkaAdminClient(bootstrap_servers=cluster.settings.bootstrap_servers)
    try:
        offsets = _committed_offsets(admin, cluster.settings.app_id, dict.fromkeys(range(4), 1))
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
