"""`loyalty broker` runs tansu in the foreground and takes it down with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tools.broker import free_port, wait_for_broker


def test_sigterm_stops_the_broker_command_and_its_tansu_child():
    port = free_port()
    children: list[int] = []
    proc = subprocess.Popen([sys.executable, "-m", "tools", "broker", "--broker", f"kafka://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_broker(f"127.0.0.1:{port}", timeout_s=20)
        children += [int(pid) for pid in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        assert children, "tansu runs as a child of `loyalty broker`"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:  # never leave a broker behind, even when the test fails
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
