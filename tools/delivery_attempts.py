"""Deliver one record: attempts with backoff until a 2xx, or park it on `<topic>-undelivered` with the reason."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

import click
import orjson
from kafka.errors import KafkaError

from schemas.timeutil import format_ms
from tools import webhook
from tools.delivery_metrics import DeliveryMetrics
from tools.verify import output_id

_PARK_RETRY_S = 5.0


@dataclass(frozen=True)
class DeliveryConfig:
    """What `loyalty deliver` was told: where from, where to, which records, and how hard to try."""
    topic: str
    url: str
    secret: bytes = field(repr=False)
    group_id: str
    only: frozenset[str] = frozenset()
    concurrency: int = 4
    timeout_s: float = 10.0
    max_attempts: int = 10
    max_seconds: float = 3600.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0

    @property
    def park_topic(self) -> str:
        """Where records that could not be delivered go."""
        return f"{self.topic}-undelivered"

    @property
    def host(self) -> str:
        """The receiver's host[:port], safe to print."""
        return receiver_host(self.url)


def receiver_host(url: str) -> str:
    """Return a URL's host[:port]: no path, query or credentials, which may hold tokens."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def record_id(topic: str, value: bytes, doc: Any) -> str:
    """Return the idempotency key: the record's deterministic id (trigger_id, entry_id...), else its digest."""
    try:
        return output_id(topic, value, doc)
    except (KeyError, TypeError):  # a record of another shape: its bytes still identify it
        return output_id("", value, {})


@dataclass
class Job:
    """One record on its way to the receiver, and the entry and lane its completion frees."""
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes
    doc: Any
    idempotency_key: str
    entry: Any = None
    lane: Any = None


class Outcome(NamedTuple):
    """How a job ended: delivered, parked, or abandoned (the deliverer is stopping; it is delivered next run)."""
    kind: str
    attempts: int = 0
    reason: str = ""


ABANDONED = Outcome("abandoned")


class Attempts:
    """Try a job until the receiver takes it, the attempts or the time run out, or the deliverer stops."""

    def __init__(self, config: DeliveryConfig, producer: Any, metrics: DeliveryMetrics, stop: threading.Event):
        self.config, self.producer, self.metrics, self.stop = config, producer, metrics, stop

    def deliver(self, job: Job) -> Outcome:
        """Return delivered after a 2xx, parked when retrying is hopeless or over, abandoned on stop."""
        config, started, attempts = self.config, time.monotonic(), 0
        while True:
            attempts += 1
            answer = webhook.post(config.url, job.value, webhook.headers(config.secret, job.value,
                                                                         job.idempotency_key, config.topic),
                                  config.timeout_s)
            if answer.delivered:
                self.metrics.seconds.observe(time.monotonic() - started)
                self.metrics.delivered.inc()
                return Outcome("delivered", attempts)
            wait_s = answer.retry_after_s if answer.retry_after_s is not None else webhook.backoff_s(
                attempts, config.backoff_base_s, config.backoff_cap_s)
            if (not answer.retryable or attempts >= config.max_attempts
                    or time.monotonic() - started + wait_s > config.max_seconds):
                return self.park(job, answer, attempts)
            self.metrics.retries.labels(config.topic, answer.reason).inc()
            if self.stop.wait(wait_s):
                return ABANDONED

    def park(self, job: Job, answer: webhook.Answer, attempts: int) -> Outcome:
        """Send the record to the park topic with why and how often it failed; wait until the broker has it."""
        value = orjson.dumps({
            "reason": answer.reason, "attempts": attempts, "last_status": answer.status,
            "idempotency_key": job.idempotency_key, "parked_at": format_ms(int(time.time() * 1000)),
            "source": {"topic": self.config.topic, "partition": job.partition, "offset": job.offset},
            "record": job.doc if job.doc is not None else job.value.decode("utf-8", "replace")})
        while True:
            try:
                self.producer.send(self.config.park_topic, key=job.key, value=value).get(timeout=30)
                self.metrics.parked.labels(self.config.topic, answer.reason).inc()
                return Outcome("parked", attempts, answer.reason)
            except KafkaError as exc:  # not parked, so not done: tried again, and never committed past
                click.echo(f"deliver: cannot park offset {job.offset} of partition {job.partition} on "
                           f"{self.config.park_topic}: {exc}; trying again in {_PARK_RETRY_S:g}s", err=True)
                if self.stop.wait(_PARK_RETRY_S):
                    return ABANDONED
