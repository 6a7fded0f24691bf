"""A worker started before its broker says at once what it waits for, instead of 15 silent seconds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.e2e.test_broker_command import _lines, _wait_for_line
from tools.broker import free_port
from tools.processes import stop_process


def worker_without_broker(tmp_path, address: str) -> subprocess.Popen:
    """Start a worker whose broker address has nothing listening; its stderr is piped."""
    env = {**os.environ, "LOYALTY_BROKER": f"kafka://{address}", "LOYALTY_WEB_PORT": str(free_port()),
           "LOYALTY_DATA_DIR": str(tmp_path / "data")}
    return subprocess.Popen([sys.executable, "-m", "tools", "worker", "--clock", "event"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_without_a_broker_says_what_it_waits_for_at_once(tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = worker_without_broker(tmp_path, address)
    try:
        lines = _lines(proc.stderr)
        # Well before the 15 s it waits: said once, at the start, with the address and how to change it.
        line = _wait_for_line(lines, b"waiting up to 15s for a Kafka broker", timeout_s=10).decode()
        assert address in line and "LOYALTY_BROKER" in line
        assert b"still no broker" in _wait_for_line(lines, b"still no broker", timeout_s=10)
    finally:
        stop_process(proc, timeout_s=5)
    assert proc.returncode is not None


def test_sigusr1_prints_where_a_starting_worker_waits_and_it_goes_on(tmp_path):
    proc = worker_without_broker(tmp_path, f"127.0.0.1:{free_port()}")
    try:
        lines = _lines(proc.stderr)
        _wait_for_line(lines, b"waiting up to 15s for a Kafka broker", timeout_s=10)
        proc.send_signal(signal.SIGUSR1)
        assert b"wait_for_broker" in _wait_for_line(lines, b"wait_for_broker", timeout_s=10)
        assert proc.poll() is None, "SIGUSR1 ended the worker"
        assert b"still no broker" in _wait_for_line(lines, b"still no broker", timeout_s=10)  # it goes on waiting
    finally:
        stop_process(proc, timeout_s=5)
