"""Startup mistakes an operator makes on day one end in one line and exit 2, before anything waits or binds."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli_errors import loyalty
import tools.broker as broker_module
from tools.broker import BrokerError, EmbeddedBroker, free_port


def assert_one_line_exit_2(result: subprocess.CompletedProcess, *needles: str) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, stderr)
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr and "panicked" not in stderr and "\x1b" not in stderr, stderr
    for needle in needles:
        assert needle in stderr, stderr
    return stderr


def unreachable_broker() -> str:
    return f"kafka://127.0.0.1:{free_port()}"


def test_a_busy_web_port_names_the_port_and_how_to_change_it(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = loyalty("worker", "--clock", "event", "--web-port", str(port), "--broker", unreachable_broker(),
                         "--data-dir", str(tmp_path / "data"), timeout_s=60)
    assert_one_line_exit_2(result, str(port), "--web-port", "LOYALTY_WEB_PORT")
    assert time.monotonic() - started < 10  # refused before waiting for the broker


def worker_with(patch: str, *args: str) -> subprocess.CompletedProcess:
    """Run `loyalty worker ARGS` after running `patch` in its process (to stage what a user cannot)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    return subprocess.run([sys.executable, "-c", f"{patch}\nfrom tools.cli import main\nmain()", "worker", *args],
                          capture_output=True, timeout=60, env=clean)


@pytest.mark.broker
def test_a_web_port_taken_after_the_check_still_ends_in_one_line(tmp_path):
    """Another process takes the port between the early check and the bind Faust serves on."""
    with EmbeddedBroker(log=tmp_path / "broker.log") as broker, socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = worker_with("import streams.worker; streams.worker.check_web_port = lambda host, port: None",
                             "--clock", "event", "--web-port", str(port), "--broker", broker.url,
                             "--data-dir", str(tmp_path / "data"))
    assert_one_line_exit_2(result, str(port), "--web-port", "LOYALTY_WEB_PORT")


@pytest.mark.broker
def test_an_untested_faust_version_stops_the_worker_in_one_line(tmp_path):
    patch = ("import importlib.metadata as m; installed = m.version\n"
             "m.version = lambda name: '0.16.0' if name == 'faust-streaming' else installed(name)")
    with EmbeddedBroker(log=tmp_path / "broker.log") as broker:
        result = worker_with(patch, "--clock", "event", "--web-port", str(free_port()), "--broker", broker.url,
                             "--data-dir", str(tmp_path / "data"))
    assert_one_line_exit_2(result, "faust-streaming 0.16.0", ">=0.15.3,<0.16")


def hold_lock(data_dir) -> subprocess.Popen:
    """Start a process that holds a worker's data-dir lock, as a running worker does."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; from streams.worker import lock_data_dir; "
                             "lock = lock_data_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
                             str(data_dir)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"locked\n"
    return proc


def test_a_second_worker_on_a_data_dir_is_refused_and_a_killed_ones_lock_does_not_block(tmp_path):
    data_dir = tmp_path / "data"
    holder = hold_lock(data_dir)
    try:
        refused = loyalty("worker", "--clock", "event", "--web-port", str(free_port()), "--data-dir", str(data_dir),
                          "--broker", unreachable_broker(), timeout_s=60)
        assert_one_line_exit_2(refused, str(data_dir), f"pid {holder.pid}", "--data-dir")
    finally:
        holder.kill()  # kill -9: the kernel releases the lock; the file with the dead PID stays
        holder.wait()
    assert (data_dir / "worker.lock").exists()
    # The stale lock does not block: the worker passes that check and stops at the next one (a busy port).
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = loyalty("worker", "--clock", "event", "--web-port", str(port), "--data-dir", str(data_dir),
                         "--broker", unreachable_broker(), timeout_s=60)
    stderr = assert_one_line_exit_2(result, str(port))
    assert "pid" not in stderr, stderr


@pytest.mark.parametrize("broker", ["http://127.0.0.1:9092", "https://h:1", "kafka://h:1,http://h2:2",
                                    "ssl://h:1", "kafka://h", "h:99999", "kafka://h:1/path", ","])
def test_broker_addresses_other_than_kafka_host_port_are_refused(broker):
    named = "http://h2:2" if broker == "kafka://h:1,http://h2:2" else broker  # a list: the address at fault
    for args in (("produce", "--tick", "2026-01-01T00:00:00Z"), ("topics", "create"), ("broker",)):
        assert_one_line_exit_2(loyalty(*args, "--broker", broker, timeout_s=30), "--broker", named)


@pytest.mark.broker
def test_kafka_host_port_lists_are_accepted(tmp_path):
    with EmbeddedBroker(log=tmp_path / "broker.log") as broker:
        address = f"{broker.host}:{broker.port}"
        for given in (address, f"kafka://{address}", f"kafka://{address},{address}", f" {address} ; kafka://{address}"):
            result = loyalty("topics", "create", "--broker", given, "--partitions", "1", timeout_s=60)
            assert result.returncode == 0, (given, result.stderr.decode())


@pytest.mark.broker  # tansu is started, and refuses the address
@pytest.mark.parametrize("address", ["kafka://192.0.2.1:9092", "kafka://no-such-host.invalid:9092"])
def test_the_embedded_broker_on_an_address_it_cannot_use(address):
    assert_one_line_exit_2(loyalty("broker", "--broker", address, timeout_s=30), address.split("://")[1])


@pytest.mark.broker  # tansu is started, and refuses the address
def test_the_embedded_broker_on_a_busy_port():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert_one_line_exit_2(loyalty("broker", "--broker", f"127.0.0.1:{port}", timeout_s=30), str(port))


def test_the_embedded_broker_exiting_early_is_one_line(tmp_path, monkeypatch, capfd):
    """Whatever makes tansu exit before it listens (here a fake tansu), its panic becomes one line."""
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'tansu broker 0.6.0'\necho \"thread 'main' panicked at src/main.rs:1:1:\" >&2\n"
                    "echo 'called Result::unwrap() on an Err value: nope' >&2\necho 'stack backtrace:' >&2\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(broker_module, "tansu_binary", lambda: fake)
    with pytest.raises(BrokerError) as error:
        EmbeddedBroker(log=sys.stderr).start("127.0.0.1", free_port())
    message = str(error.value)
    assert "\n" not in message and "tansu" in message and "nope" in message, message
    out, err = capfd.readouterr()
    assert "panicked" not in out + err and "backtrace" not in out + err, (out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_the_worker_waits_for_its_broker_is_one_line_and_the_signals_exit_code(tmp_path, sig):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    proc = subprocess.Popen([sys.executable, "-m", "tools", "worker", "--clock", "event", "--web-port",
                             str(free_port()), "--broker", unreachable_broker(), "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean)
    try:
        waiting = proc.stderr.readline().decode()  # the worker says what it waits for, then waits
        assert "waiting" in waiting or "broker" in waiting, waiting
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    assert stderr.decode().strip() == "loyalty worker: stopped while starting, before it folded anything"


# A fake command whose loading is stopped: the signal comes while `loyalty` still imports it.
_STOPPED_WHILE_LOADING = """
import os, signal, sys, time, types
import tools.entry
fake = types.ModuleType("tools.cli")
fake.main = lambda: (os.kill(os.getpid(), signal.{sig}), time.sleep(10), print("went on"))
sys.modules["tools.cli"] = fake
tools.entry.main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_loyalty_loads_its_command_ends_it_at_once_quietly(sig):
    result = subprocess.run([sys.executable, "-c", _STOPPED_WHILE_LOADING.format(sig=sig.name)],
                            capture_output=True, timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert (result.returncode, result.stdout, result.stderr) == (128 + sig, b"", b"")


# A command stopped while it works: its `finally` runs (it stops what it started) and it says so in one line.
_STOPPED_MIDWAY = """
import os, signal, time, click
from tools.cli_common import friendly

@click.command()
@friendly
def export():
    try:
        os.kill(os.getpid(), signal.{sig})
        time.sleep(10)
        print("went on")
    finally:
        print("cleaned up")

export(prog_name="export")
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_command_stopped_midway_cleans_up_and_says_so_in_one_line_with_the_signals_exit_code(sig):
    result = subprocess.run([sys.executable, "-c", _STOPPED_MIDWAY.format(sig=sig.name)],
                            capture_output=True, timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 128 + sig, result
    assert (result.stdout, result.stderr) == (b"cleaned up\n", f"loyalty export: stopped ({sig.name})\n".encode())
