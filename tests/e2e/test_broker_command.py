"""`loyalty broker` runs tansu in the foreground and takes it down with it, whenever SIGTERM comes."""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tools.broker import free_port

pytestmark = pytest.mark.broker


def _children(pid: int) -> list[int]:
    """Return the PIDs of a process's children."""
    try:
        return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    """True if a process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return "zombie" in open(f"/proc/{pid}/status").read().lower()
    except FileNotFoundError:
        return True


def _tansu_on(port: int) -> list[int]:
    """Return the PIDs of live tansu processes listening on this test's port (orphans included)."""
    listener = f"tcp://127.0.0.1:{port}".encode()
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except (OSError, ValueError):
            continue
        if cmdline and cmdline[0].endswith(b"tansu") and listener in cmdline and not _gone(int(entry)):
            found.append(int(entry))
    return found


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False


def _lines(stream) -> queue.Queue:
    """Read a pipe's lines in a thread (so the test can wait for one with a timeout)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in iter(stream.readline, b"")], daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue, text: bytes, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} within {timeout_s}s")


def _stop_all(proc: subprocess.Popen, children: list[int]) -> None:
    """Never leave a broker behind, even when the test fails."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_stops_the_broker_command_and_its_tansu_child():
    port = free_port()
    children: list[int] = []
    proc = subprocess.Popen([sys.executable, "-m", "tools", "broker", "--broker", f"kafka://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The readiness line is printed only once the SIGTERM handler is in place.
        _wait_for_line(_lines(proc.stderr), b"embedded broker listening on", timeout_s=20)
        children += _children(proc.pid)
        assert children, "tansu runs as a child of `loyalty broker`"
        assert _tansu_on(port) == children  # (what the next test relies on to find an orphan)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert all(_gone(pid) for pid in children)
    finally:
        _stop_all(proc, children)


def test_sigterm_the_moment_the_broker_port_opens_still_stops_both():
    """A supervisor may signal as soon as the port answers (the address check, then tansu itself): the
    handler must exist by then, and tansu must not outlive the command, whenever the signal lands."""
    port = free_port()
    children: list[int] = []
    proc = subprocess.Popen([sys.executable, "-m", "tools", "broker", "--broker", f"kafka://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _port_open(port):  # as fast as a client can see it, so the signal lands in any gap
            assert proc.poll() is None and time.monotonic() < deadline, "the broker did not listen"
        children += _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "SIGTERM arrived before `loyalty broker` handled it"
        children += _tansu_on(port)
        assert all(_gone(pid) for pid in children) and not _tansu_on(port), "tansu outlived `loyalty broker`"
    finally:
        _stop_all(proc, children + _tansu_on(port))
