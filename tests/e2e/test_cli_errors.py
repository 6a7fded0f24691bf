"""The `loyalty` command as a user meets it: help everywhere, short messages and the contract's exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import click
import pytest

from tests.fixtures.kafka import wait_for
from tools.broker import free_port

# Every command of the README has --help.
CONTRACT_COMMANDS = [
    (), ("demo",), ("broker",), ("topics",), ("topics", "create"), ("worker",), ("produce",), ("query",),
    ("query", "customer"), ("query", "segment"), ("query", "stats"), ("replay",), ("explain",),
]


def loyalty(*args: str, timeout_s: float = 60, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run `loyalty ARGS` as a user would, with no broker or worker configured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, timeout=timeout_s,
                          cwd=cwd, env={**clean, **(env or {})})


def all_commands() -> list[tuple[str, ...]]:
    """Every command path of the click group (so a new command without --help is caught too)."""
    from tools.cli import main

    paths = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, path + (name,))

    walk(main, ())
    return paths


def assert_short_usage_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, stderr)
    assert "Traceback" not in stderr and "Traceback" not in result.stdout.decode()
    assert len(stderr.splitlines()) <= 10, stderr  # a short message, not a dump
    for needle in needles:
        assert needle in stderr, stderr


def test_every_command_has_help():
    commands = all_commands()
    assert set(CONTRACT_COMMANDS) <= set(commands)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(commands, pool.map(lambda path: loyalty(*path, "--help"), commands)))
    for path, result in results.items():
        out = result.stdout.decode()
        assert result.returncode == 0, (path, result.stderr.decode())
        assert out.startswith("Usage:"), (path, out)
        assert "Traceback" not in out + result.stderr.decode()
    assert "--json" in results[("query", "customer")].stdout.decode()
    assert "--clock" in results[("worker",)].stdout.decode()
    assert "--until" in results[("replay",)].stdout.decode()
    assert "-h" in results[()].stdout.decode()


@pytest.mark.parametrize("args,needles", [
    (("produce",), ("FILE",)),
    (("produce", "--tick", "not-a-time"), ("--tick", "not-a-time")),
    (("replay", "--until", "2026-13-01"), ("--until", "2026-13-01")),
    (("query", "customer", "x" * 65), ("64",)),
    (("query", "customer", ""), ("64",)),
    (("query", "segment", "--status", "sleepy"), ("--status",)),
    (("query", "segment"), ("--status",)),
    (("query", "segment", "--value", "golden"), ("--value",)),
    (("explain", "x" * 65), ("64",)),
    (("explain", "c1", "--store", "/no/such/store"), ("/no/such/store",)),
    (("produce", "/no/such/file.jsonl"), ("/no/such/file.jsonl",)),
    (("produce", "--synthetic", "0"), ("--synthetic",)),
    (("produce", "--broker", "nonsense:abc", "-"), ("--broker", "nonsense:abc")),
    (("query", "stats", "--url", "not-a-url"), ("--url",)),
    (("frobnicate",), ("frobnicate",)),
])
def test_bad_usage_is_a_short_message_and_exit_2(args, needles):
    assert_short_usage_error(loyalty(*args), *needles)


@pytest.mark.parametrize("args,given,needle", [
    (("produce", "/no/such/file.jsonl"), "/no/such/file.jsonl", "No such file"),
    (("produce", "--broker", "http://127.0.0.1:9092", "-"), "http://127.0.0.1:9092", "the scheme must be kafka://"),
])
def test_a_missing_file_and_a_broker_url_are_one_line_naming_the_input_once(args, given, needle):
    result = loyalty(*args)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and len(stderr.splitlines()) == 1, stderr  # no "Usage:" and "Try" lines
    assert needle in stderr and stderr.count(given) == 1, stderr


def test_worker_with_missing_policy_file(tmp_path):
    result = loyalty("worker", "--policy", "missing.toml", "--clock", "event", cwd=tmp_path, timeout_s=30)
    assert_short_usage_error(result, "missing.toml")


def test_worker_with_invalid_policy_file(tmp_path):
    (tmp_path / "bad.toml").write_text("[earn]\ncheckin_points = -1\n")
    result = loyalty("worker", "--policy", "bad.toml", "--clock", "event", cwd=tmp_path, timeout_s=30)
    assert_short_usage_error(result, "bad.toml", "checkin_points")


def test_produce_to_an_unreachable_broker_fails_fast(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"event_id":"e1","event_type":"customer.visited","customer_id":"c1",'
                     b'"occurred_at":"2026-01-01T00:00:00Z","payload":{}}\n')
    started = time.monotonic()
    result = loyalty("produce", "--broker", f"kafka://127.0.0.1:{free_port()}", str(path), timeout_s=60)
    elapsed = time.monotonic() - started
    assert_short_usage_error(result, "broker")
    assert elapsed < 30, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("command", [("worker", "--clock", "event"), ("topics", "create"), ("replay",)])
def test_commands_that_need_the_broker_fail_with_exit_2_when_it_is_unreachable(command, tmp_path):
    result = loyalty(*command, "--broker", f"kafka://127.0.0.1:{free_port()}", cwd=tmp_path, timeout_s=90)
    assert_short_usage_error(result, "no Kafka broker reachable")


@pytest.mark.parametrize("args", [("query", "stats"), ("query", "customer", "alice"),
                                  ("query", "segment", "--status", "active"), ("explain", "alice")])
def test_query_an_unreachable_worker(args):
    url = f"http://127.0.0.1:{free_port()}"
    result = loyalty(*args, "--url", url, timeout_s=30)
    assert_short_usage_error(result, url)


def test_query_an_unreachable_worker_through_the_environment():
    url = f"http://127.0.0.1:{free_port()}"
    assert_short_usage_error(loyalty("query", "stats", env={"LOYALTY_URL": url}, timeout_s=30), url)


@pytest.mark.broker
def test_unknown_customer_exits_1(cluster):
    worker = cluster.worker()
    wait_for(lambda: "events_applied" in worker.stats(), 60, "the worker to serve /stats")
    for args in (("customer", "nobody"), ("customer", "nobody", "--json")):
        result = cluster.loyalty("query", *args, "--url", worker.url)
        assert result.returncode == 1, result.stderr.decode()
        assert b"nobody" in result.stderr and b"Traceback" not in result.stderr
        assert result.stdout == b""
