"""Runtime settings: topic names, addresses and the embedded-broker switch, from flags or LOYALTY_* variables."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from projections.effects import (CampaignTriggered, CheckoutUpdated, CouponChanged, LedgerEntryMade, RequestRefused,
                                 StatusChanged, TierChanged, ValueChanged)

INPUT_TOPIC = "customer-events"
LEDGER_TOPIC = "loyalty-ledger"
UPDATES_TOPIC = "customer-updates"
CAMPAIGNS_TOPIC = "campaign-triggers"
COUPONS_TOPIC = "coupons"
DLQ_TOPIC = "customer-events-dlq"
CUSTOMER_TABLE = "customers"
# The partition clock is stored in the customer table under a key no customer id can take
# (validation rejects control characters), so it shares the customers' changelog partition and order.
CLOCK_KEY = b"\x00partition-clock"
# The partition's policies (in force and scheduled), written in the batch that changes them, before its clock record.
POLICY_KEY = b"\x00partition-policies"
PARTITION_KEYS = (CLOCK_KEY, POLICY_KEY)
OUTPUT_TOPICS = {"ledger": LEDGER_TOPIC, "update": UPDATES_TOPIC, "campaign": CAMPAIGNS_TOPIC, "coupon": COUPONS_TOPIC}
# The topic of each type of output effect (notices are counted, never sent).
TOPIC_OF: dict[type, str] = {
    LedgerEntryMade: LEDGER_TOPIC, StatusChanged: UPDATES_TOPIC, TierChanged: UPDATES_TOPIC,
    ValueChanged: UPDATES_TOPIC, RequestRefused: UPDATES_TOPIC, CheckoutUpdated: UPDATES_TOPIC,
    CampaignTriggered: CAMPAIGNS_TOPIC, CouponChanged: COUPONS_TOPIC,
}


class BrokerAddressError(ValueError):
    """A broker address other than kafka://host:port or host:port (one, or a list)."""


def parse_broker(broker: str) -> list[tuple[str, int]]:
    """Parse 'kafka://h:p', 'h:p' or a list of them (',' or Faust's ';') into [(host, port), ...]."""
    pairs = []
    for part in (p.strip() for p in broker.replace(";", ",").split(",")):
        if not part:
            continue
        scheme, sep, address = part.rpartition("://")
        if sep and scheme.lower() != "kafka":  # e.g. http://: the clients would ignore the scheme silently
            raise BrokerAddressError(f"{part!r}: the scheme must be kafka://, not {scheme}://")
        host, _, port = address.rpartition(":")
        if not host or any(c in host for c in "/@?#") or not port.isdigit() or not 0 < int(port) < 65536:
            raise BrokerAddressError(f"{part!r} is not host:port")
        pairs.append((host, int(port)))
    if not pairs:
        raise BrokerAddressError(f"{broker!r}: no address given")
    return pairs


def bootstrap_servers(broker: str) -> list[str]:
    """Turn 'kafka://h:p;...' or 'h:p,h2:p2' into the clients' ['h:p', ...] (BrokerAddressError if malformed)."""
    return [f"{host}:{port}" for host, port in parse_broker(broker)]


#: Each setting's default when neither a flag nor its LOYALTY_* variable gives one (the CLI's --help shows them).
DEFAULTS = {"broker": "kafka://127.0.0.1:9092", "broker_kind": "kafka", "partitions": 4, "replication": 1,
            "app_id": "loyalty-stream", "data_dir": "./data", "web_host": "127.0.0.1", "web_port": 6066,
            "clock": "wall", "faust_sensor": "1", "batch_max_events": 5000, "fetch_max_wait_ms": 20,
            "commit_interval_s": 1.0, "progress_seconds": 30, "erasure_days": 7,
            "command_timeout_s": 5.0}

#: What a worker reads from the environment without a flag of its own (listed in `loyalty worker --help`).
WORKER_ENV_WITHOUT_FLAG = {
    "LOYALTY_REPLICATION": f"replication factor of the changelog topics (default {DEFAULTS['replication']})",
    "LOYALTY_WEB_CANONICAL_URL": "the address peers use to reach this worker (default http://{web-host}:{web-port})",
    "LOYALTY_FAUST_SENSOR": f"0 turns off Faust's own Prometheus sensor, about 20% faster "
                            f"(default {DEFAULTS['faust_sensor']})",
    "LOYALTY_BATCH_MAX_EVENTS": f"at most this many events are fetched and folded as one batch "
                                f"(default {DEFAULTS['batch_max_events']})",
    "LOYALTY_FETCH_MAX_WAIT_MS": f"a fetch of the input waits at most this long for records "
                                 f"(default {DEFAULTS['fetch_max_wait_ms']})",
    "LOYALTY_COMMIT_INTERVAL_S": f"input offsets are committed this often, in seconds "
                                 f"(default {DEFAULTS['commit_interval_s']})",
    "LOYALTY_SESSION_TIMEOUT_S": "embedded broker only: the consumer session timeout in seconds (default 10)",
    "LOYALTY_API_TOKEN": "bearer token every HTTP route but /metrics and /health requires (default: none)",
    "LOYALTY_METRICS_TOKEN": "bearer token /metrics requires (default: none)",
    "LOYALTY_COMMAND_TOKEN": "bearer token the command routes (POST) require; it also reads (default: none, and "
                             "commands are taken from 127.0.0.1 only)",
    "LOYALTY_COMMAND_TIMEOUT_S": f"how long a command waits for its outcome before answering 202 "
                                 f"(default {DEFAULTS['command_timeout_s']})",
    "LOYALTY_ERASURE_DAYS": f"days until erased or refused personal data leaves the changelog and DLQ "
                            f"(default {DEFAULTS['erasure_days']})",
}
DAY_MS = 86_400_000


def _env(name: str, setting: str):
    """The LOYALTY_* variable `name` if set, else the setting's default."""
    return os.environ.get(name) or DEFAULTS[setting]


@dataclass(frozen=True)
class Settings:
    """Everything a worker or a tool needs to reach Kafka and its peers."""
    broker: str = field(default_factory=lambda: _env("LOYALTY_BROKER", "broker"))
    # "embedded" turns on the workarounds for tansu (docs/embedded-broker.md); "kafka" is Apache Kafka.
    broker_kind: str = field(default_factory=lambda: _env("LOYALTY_BROKER_KIND", "broker_kind"))
    partitions: int = field(default_factory=lambda: int(_env("LOYALTY_PARTITIONS", "partitions")))
    replication: int = field(default_factory=lambda: int(_env("LOYALTY_REPLICATION", "replication")))
    app_id: str = field(default_factory=lambda: _env("LOYALTY_APP_ID", "app_id"))
    data_dir: Path = field(default_factory=lambda: Path(_env("LOYALTY_DATA_DIR", "data_dir")))
    web_host: str = field(default_factory=lambda: _env("LOYALTY_WEB_HOST", "web_host"))
    web_port: int = field(default_factory=lambda: int(_env("LOYALTY_WEB_PORT", "web_port")))
    canonical_url: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_WEB_CANONICAL_URL"))
    policy_file: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_POLICY"))
    # When policy_file differs from the policy in force in the log: "log" or "file" wins (None: refuse to start).
    policy_wins: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_POLICY_WINS") or None)
    clock: str = DEFAULTS["clock"]
    tick_seconds: Optional[float] = None  # None: the policy's [clock] tick_seconds
    # Faust's own Prometheus sensor costs time on every message; it can be turned off for throughput.
    faust_sensor: bool = field(
        default_factory=lambda: _env("LOYALTY_FAUST_SENSOR", "faust_sensor") not in ("0", "false", "no"))
    # At most this many events are fetched and folded as one batch (a fetch never waits to fill it).
    batch_max_events: int = field(
        default_factory=lambda: int(_env("LOYALTY_BATCH_MAX_EVENTS", "batch_max_events")))
    # Kafka answers a fetch once a record is there; the embedded broker waits this long (the latency floor).
    fetch_max_wait_ms: int = field(
        default_factory=lambda: int(_env("LOYALTY_FETCH_MAX_WAIT_MS", "fetch_max_wait_ms")))
    # Input offsets of processed batches are committed this often (a restart re-reads at most this much).
    commit_interval_s: float = field(
        default_factory=lambda: float(_env("LOYALTY_COMMIT_INTERVAL_S", "commit_interval_s")))
    # A worker logs one progress line this often (0: never), so a backlog is seen draining without Prometheus.
    progress_seconds: float = field(
        default_factory=lambda: float(_env("LOYALTY_PROGRESS_SECONDS", "progress_seconds")))
    # Bearer tokens of the HTTP API and of /metrics; None leaves the route open (see the README's security section).
    api_token: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_API_TOKEN") or None, repr=False)
    metrics_token: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_METRICS_TOKEN") or None,
                                         repr=False)
    # Commands (POST) want this token; without one, only callers on this host may send them.
    command_token: Optional[str] = field(default_factory=lambda: os.environ.get("LOYALTY_COMMAND_TOKEN") or None,
                                         repr=False)
    command_timeout_s: float = field(
        default_factory=lambda: float(_env("LOYALTY_COMMAND_TIMEOUT_S", "command_timeout_s")))
    # Personal data the engine wrote to Kafka is gone this many days after it was erased or refused: the DLQ
    # (raw bytes of refused records) keeps records this long, the changelog compacts older states within it.
    erasure_days: float = field(default_factory=lambda: float(_env("LOYALTY_ERASURE_DAYS", "erasure_days")))

    @property
    def embedded(self) -> bool:
        """True when the broker is the embedded one and its workarounds apply."""
        return self.broker_kind == "embedded"

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker address as kafka-python wants it: ['host:port', ...]."""
        return bootstrap_servers(self.broker)

    @property
    def changelog_topic(self) -> str:
        """The customer table's changelog topic, as Faust names it."""
        return f"{self.app_id}-{CUSTOMER_TABLE}-changelog"

    def topic_partitions(self) -> dict[str, int]:
        """Every topic the application reads or writes (the table's changelog too), with its partition count."""
        return {name: self.partitions for name in (INPUT_TOPIC, LEDGER_TOPIC, UPDATES_TOPIC, CAMPAIGNS_TOPIC,
                                                   COUPONS_TOPIC, DLQ_TOPIC, self.changelog_topic)}

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """Kafka configs of the topics whose records must not be kept for ever (personal data, erasure)."""
        within_ms = str(round(self.erasure_days * DAY_MS))
        return {
            # Compaction keeps only each customer's latest state, so an erased birthday leaves the changelog;
            # the lag bounds when (Kafka rolls the active segment for it).
            self.changelog_topic: {"cleanup.policy": "compact", "max.compaction.lag.ms": within_ms},
            DLQ_TOPIC: {"cleanup.policy": "delete", "retention.ms": within_ms},
        }
