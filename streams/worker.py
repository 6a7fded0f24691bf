"""Start a stream worker in the foreground, after checking that its data dir and web port are its own."""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
from pathlib import Path
from typing import IO, Union

from schemas.policy import Policy
from schemas.policy_doc import policy_version

import orjson

from streams.gc_tuning import tune_gc
from streams.policy_source import conflict_line, digest_of
from streams.settings import CLOCK_KEY, Settings

LOCK_FILE = "worker.lock"


class StartupError(RuntimeError):
    """The worker cannot start here (its data dir or web port is taken): one line for the operator."""


def lock_data_dir(data_dir: Union[str, Path]) -> IO:
    """Take the data dir for this process, or fail naming the worker that has it; close the file to let go.

    flock, not the file's existence, is the lock: the kernel releases it when the process dies (kill -9
    too), so a stale file with a dead PID never blocks. RocksDB would only fail later, with a traceback.
    """
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path / LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise StartupError(f"data dir {path} is in use by a running worker (pid {holder}); give each worker "
                           f"its own --data-dir / LOYALTY_DATA_DIR") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def bind_web_port(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port for the worker's HTTP server, or fail in one line (Faust would dump a traceback)."""
    try:
        return socket.create_server((host, port))  # SO_REUSEADDR, as aiohttp binds
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"web port {port} on {host} is already in use (another worker?); give this worker "
                               f"another with --web-port / LOYALTY_WEB_PORT") from None
        raise StartupError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}; "
                           f"check --web-host / LOYALTY_WEB_HOST and --web-port / LOYALTY_WEB_PORT") from None


def check_web_port(host: str, port: int) -> None:
    """Fail in one line unless the worker's HTTP server can listen on host:port (before waiting for the broker)."""
    bind_web_port(host, port).close()


def is_loopback(host: str) -> bool:
    """True if host is a loopback address (127.0.0.0/8, ::1) or `localhost`: only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_web_auth(settings: Settings, insecure_no_auth: bool = False) -> None:
    """Refuse to serve the HTTP API beyond this machine without LOYALTY_API_TOKEN, unless told to on purpose."""
    if settings.api_token is None and not is_loopback(settings.web_host) and not insecure_no_auth:
        raise StartupError(f"refusing to serve HTTP on {settings.web_host} without authentication: set "
                           f"LOYALTY_API_TOKEN (clients send it as a bearer token), bind a loopback address with "
                           f"--web-host 127.0.0.1, or give --insecure-no-auth")


def check_faust() -> None:
    """Refuse, in one line, a faust-streaming outside the tested range (before Faust is imported)."""
    # Here, like Faust in run_worker: the CLI imports this module's checks without loading the Kafka clients.
    from streams.faust_version import UntestedFaustVersion, check_faust_version
    try:
        check_faust_version()
    except UntestedFaustVersion as exc:
        raise StartupError(str(exc)) from None


# Where the last clock record of a changelog partition is looked for: it is the last record of every batch, so
# only a batch cut by kill -9 (at most one state per customer of a batch of 5,000 events) lies after it.
CLOCK_LOOKBACKS = (1, 6_000)


def group_clocks(settings: Settings) -> set[str]:
    """Return the --clock the group's workers last wrote each changelog partition with (empty for a new group)."""
    # "" for records of earlier versions, which did not say: they do not decide
    return {record.get("clock", "") for record in last_clock_records(settings).values()} - {""}


def last_clock_records(settings: Settings) -> dict[int, dict]:
    """Return the last clock record of each changelog partition (empty for a new group)."""
    # here, when the worker starts: the CLI imports this module's checks without loading the Kafka clients
    from streams.kafka_log import high_watermarks, read_log
    try:
        ends = high_watermarks(settings.broker, settings.changelog_topic)
    except KeyError:  # no changelog yet: a new group
        return {}
    found: dict[int, dict] = {}
    for lookback in CLOCK_LOOKBACKS:
        unknown = {partition: end for partition, end in ends.items() if end and partition not in found}
        starts = {partition: max(0, end - lookback) for partition, end in unknown.items()}
        for record in read_log(settings.broker, settings.changelog_topic, unknown, timeout_s=60, starts=starts):
            if record.key == CLOCK_KEY and record.value:
                found[record.partition] = orjson.loads(record.value)
    return found


def check_group_clock(settings: Settings, switch_clock: bool = False) -> None:
    """Refuse, in one line, a worker whose --clock differs from the one its group folds with.

    A wall-clock worker in an event-clock group would tick every partition to today, and an event-clock
    worker in a wall-clock group would stop the clock of its partitions; neither can be undone.
    """
    if switch_clock:
        return
    others = group_clocks(settings) - {settings.clock}
    if others:
        raise StartupError(f"the group {settings.app_id} folds on --clock {'/'.join(sorted(others))}, this worker was "
                           f"started with --clock {settings.clock}: start it with --clock {sorted(others)[0]}, or "
                           f"stop every worker of the group and give --switch-clock to move the group over")


def check_group_policy(settings: Settings, policy: Policy) -> None:
    """Refuse, in one line, a worker whose LOYALTY_POLICY differs from the policy in force on any partition."""
    if settings.policy_file is None or settings.policy_wins is not None:
        return
    file_version = policy_version(policy)
    differing: dict[str, list[int]] = {}
    for partition, record in sorted(last_clock_records(settings).items()):
        version = record.get("policy")
        if version is not None and digest_of(version) != file_version:
            differing.setdefault(version, []).append(partition)
    if differing:
        version, partitions = next(iter(differing.items()))
        raise StartupError(conflict_line(version, partitions, settings.policy_file, file_version))


def run_worker(settings: Settings, log_format: str = "text") -> None:
    """Run one worker until it is stopped (SIGTERM or Ctrl-C); the app logs what it committed."""
    check_faust()
    # Bound here and handed to Faust's web server: no other process can take the port in between.
    web_socket = bind_web_port(settings.web_host, settings.web_port)
    import faust  # here, so that the CLI imports this module's checks without loading Faust

    from streams.app import create_app
    from streams.logs import configure_logging, lifecycle
    configure_logging(log_format)
    tune_gc()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, web_socket)
    lifecycle("worker starting", app_id=settings.app_id, broker=settings.broker, broker_kind=settings.broker_kind,
              partitions=settings.partitions, clock=settings.clock, web_port=settings.web_port,
              data_dir=str(settings.data_dir), progress_seconds=settings.progress_seconds)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    # Faust's startup spinner writes cursor escapes (ESC[?25h) even when stdout is not a terminal; our own
    # lifecycle lines say when the worker is up.
    worker.spinner = None
    worker.execute_from_commandline()
