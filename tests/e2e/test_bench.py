"""`loyalty bench --quick --json` measures every row of its table in one run and leaves no process behind.

Figures are checked to be measured (positive), never for speed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.broker

ROWS = [
    "produce", "raw_read", "validation", "fold", "validation_fold", "worker_step", "floor", "state_decode", "state_encode",
    "worker_1", "worker_2", "latency_p50", "latency_p99", "command_rate", "command_p50", "command_p99", "replay",
    "peer_loop", "peer_quix", "worker_peak_rss", "state_store_median", "state_store_max", "state_changelog_median",
    "state_changelog_max", "state_heavy_1y", "state_heavy_2y", "tick_large", "tick_small", "policy_change",
    "rebuild_seconds", "rebuild_rate", "ratio_worker_in_process", "ratio_worker_loop", "ratio_worker_quix",
    "ratio_step_floor", "ratio_replay_raw",
]


def _alive_in_group(pgid: int) -> list[str]:
    """Processes (not zombies) still in process group pgid, as 'pid command'."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name_end = text.rindex(")")
        state, _, group = text[name_end + 2:].split()[:3]
        if int(group) == pgid and state != "Z":
            alive.append(f"{stat.parent.name} {text[text.index('(') + 1:name_end]}")
    return alive


def test_quick_bench_measures_every_row_and_stops_everything_it_started(tmp_path):
    # Its own session: every child (tansu, workers, peers, replay) is in this process group unless it left it.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    proc = subprocess.Popen([sys.executable, "-m", "tools", "bench", "--quick", "--json"], cwd=tmp_path, env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    stderr = err.decode(errors="replace")
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "bench [1/" in stderr and "bench [10/" in stderr, stderr  # the progress line, phase by phase

    report = orjson.loads(out)
    rows = {row["key"]: row for row in report["rows"]}
    assert list(rows) == ROWS
    not_positive = {key: row for key, row in rows.items() if not (row["value"] is not None and row["value"] > 0)}
    assert not not_positive, not_positive
    assert report["complete"] is True
    assert report["backlog"]["applied"] > 0 and report["backlog"]["records"] > report["backlog"]["applied"]

    deadline = time.monotonic() + 10  # a child stopped by SIGTERM may take a moment to be gone
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive_in_group(proc.pid), "processes left running"
    assert not list(tmp_path.iterdir()), "the bench wrote into the current directory"


def test_sigterm_in_the_middle_stops_the_workers_and_the_broker_it_started(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tools", "bench", "--quick"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        seen = []
        for line in iter(proc.stderr.readline, b""):  # the progress line says when the workers start
            seen.append(line.decode(errors="replace"))
            if "] 2 workers ..." in seen[-1]:
                break
        assert "] 2 workers ..." in seen[-1], "".join(seen)
        deadline = time.monotonic() + 60  # the bench, tansu and both workers
        while len(_alive_in_group(proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_alive_in_group(proc.pid)) >= 4, _alive_in_group(proc.pid)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode == 143, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err
    deadline = time.monotonic() + 10
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive_in_group(proc.pid), "processes left running"
