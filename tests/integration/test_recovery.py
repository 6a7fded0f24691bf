"""A worker stopped and restarted, or killed mid-stream and restarted without its local state, ends in the
state of an uninterrupted run: restored from the changelogs, no ledger total differs."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.fixtures.kafka import wait_for
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
    try:
        producer.stdin.write(b"\n".join(streaming) + b"\n")
        producer.stdin.close()
        at_kill = wait_for(lambda: (lambda n: n if n >= applied_before + 200 else None)(
            worker.stats()["events_applied"]), 60, "the worker to be busy with the streamed part", interval_s=0.05)
        worker.kill()
    finally:
        assert producer.wait(60) == 0, producer.stderr.read().decode()
    assert at_kill < distinct_valid_events(warmup + streaming), "the kill should land mid-stream"
    assert worker.proc.returncode == -9

    shutil.rmtree(worker.data_dir)
    worker.start()
    cluster.produce_lines(later)
    wait_until_applied(worker, distinct_valid_events(lines), timeout_s=120)

    found = assert_equals_uninterrupted_run(cluster, worker, lines, tmp_path / "replay")
    print(f"ledger: {found['ledger_entries']} entries, {found['ledger_repeats']} re-sent after the crash")
