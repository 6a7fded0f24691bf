"""Child processes of the tools (workers for the demo and the benchmarks), stopped by PID."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streams.settings import Settings


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.25):
    """Poll condition() until it returns a truthy value, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def start_worker(settings: Settings, data_dir: Path, log_path: Path, extra_env: dict = None) -> subprocess.Popen:
    """Start `loyalty worker` in event-clock mode as a child process."""
    env = {**os.environ, "LOYALTY_BROKER": settings.broker, "LOYALTY_BROKER_KIND": settings.broker_kind,
           "LOYALTY_PARTITIONS": str(settings.partitions), "LOYALTY_APP_ID": settings.app_id,
           "LOYALTY_WEB_PORT": str(settings.web_port), "LOYALTY_DATA_DIR": str(data_dir), **(extra_env or {})}
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "tools", "worker", "--clock", "event"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Stop a child by PID: terminate, then kill after timeout_s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
