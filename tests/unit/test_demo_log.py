"""`loyalty demo` names the worker log only when it is kept: with --keep, or when the demo failed."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tools.broker
import tools.demo
from tools.demo import DemoError, run_demo


class FakeBroker:
    """Stands in for the embedded broker: no process, no topics."""
    pid, url = 0, "kafka://127.0.0.1:1"

    def __init__(self, log=None) -> None:
        self.stopped = False

    def start(self) -> "FakeBroker":
        return self

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def failing_worker(monkeypatch):
    """The demo's worker exits at once (code 3), before any event is sent."""
    monkeypatch.setattr(tools.broker, "EmbeddedBroker", FakeBroker)
    monkeypatch.setattr(tools.broker, "create_topics", lambda broker, topics: None)
    monkeypatch.setattr(tools.demo, "synthetic_history", lambda events, customers, seed: [])
    monkeypatch.setattr("tools.produce.send_lines", lambda settings, lines: len(lines))

    def start_worker(settings, data_dir, log_path):
        log_path.write_text("worker: boom\n")
        child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        child.wait()
        return child
    monkeypatch.setattr(tools.demo, "start_worker", start_worker)


def paths_named(lines: list[str]) -> list[Path]:
    return [Path(p) for line in lines for p in re.findall(r"(/\S+worker\.log)", line)]


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_demo_names_a_worker_log_that_exists(failing_worker, keep):
    said: list[str] = []
    with pytest.raises(DemoError) as failure:
        run_demo(10, 1, 1, keep, say=said.append)
    assert "exited with code 3" in str(failure.value)
    named = paths_named([*said, str(failure.value)])
    assert named and all(path.read_text() == "worker: boom\n" for path in named)
    assert bool(paths_named(said)) == keep  # the start line names the log only if --keep keeps it
    for workdir in {path.parent for path in named}:
        shutil.rmtree(workdir)
