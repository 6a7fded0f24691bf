"""Child processes of the tools (workers for the demo and the benchmarks, tansu), stopped by PID."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Optional

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


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a `loyalty` child process: ours, plus the broker and the app of these settings."""
    return {**os.environ, "LOYALTY_BROKER": settings.broker, "LOYALTY_BROKER_KIND": settings.broker_kind,
            "LOYALTY_PARTITIONS": str(settings.partitions), "LOYALTY_APP_ID": settings.app_id}


def start_worker(settings: Settings, data_dir: Path, log_path: Path, extra_env: Optional[dict] = None,
                 clock: str = "event") -> subprocess.Popen:
    """Start `loyalty worker` (event clock by default) as a child process, its output appended to log_path."""
    env = {**child_env(settings), "LOYALTY_WEB_PORT": str(settings.web_port), "LOYALTY_DATA_DIR": str(data_dir),
           **(extra_env or {})}
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "tools", "worker", "--clock", clock],
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


_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class HeldOutput(threading.Thread):
    """Copy a child's output pipe to a stream, holding it back until release(): a child that dies while
    starting is then summed up in one line (exit_reason) instead of spilling its panic on the terminal."""

    def __init__(self, pipe: IO[bytes], target: IO) -> None:
        super().__init__(daemon=True)
        self.pipe, self.fd = pipe, target.fileno()
        self.held: list[bytes] = []
        self._released = False
        self._lock = threading.Lock()

    def run(self) -> None:
        for line in iter(self.pipe.readline, b""):
            with self._lock:
                if self._released:
                    os.write(self.fd, line)
                else:
                    self.held.append(line)

    def release(self) -> None:
        """Write what was held and copy everything from now on."""
        with self._lock:
            self._released = True
            for line in self.held:
                os.write(self.fd, line)
            self.held.clear()


def exit_reason(output: bytes) -> str:
    """Sum up the output of a child that died as one line: a Rust panic's message, else the last error line."""
    lines = [line.strip() for line in _ANSI.sub(b"", output).decode(errors="replace").splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if " panicked at " in line:
            return lines[i + 1][:300]
    errors = [line for line in lines if "ERROR" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:300]
