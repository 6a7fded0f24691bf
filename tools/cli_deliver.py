"""`loyalty deliver`: send an output topic's records to a webhook (docs/delivery.md)."""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

import click

from streams.kafka_auth import KAFKA_AUTH_ENV
from tools.cli_common import UserError, broker_option, env_epilog, friendly, settings_from


def _only(value: Optional[str]) -> frozenset[str]:
    """Parse --only a,b into a set of names."""
    return frozenset(name.strip() for name in (value or "").split(",") if name.strip())


def _secret(path: str) -> bytes:
    """Read the shared secret (one line; a trailing newline is not part of it)."""
    try:
        with open(path, "rb") as handle:
            secret = handle.read().strip()
    except OSError as exc:
        raise UserError(f"--secret-file: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise UserError(f"--secret-file: {path} is empty")
    return secret


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--url: {url!r} is not an http:// or https:// address")
    return url


@click.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.option("--topic", required=True, help="The output topic to deliver, e.g. campaign-triggers.")
@click.option("--url", required=True, help="The receiver: every record is POSTed here as JSON.")
@click.option("--secret-file", required=True, type=click.Path(dir_okay=False),
              help="File holding the shared secret that signs each request (HMAC-SHA256).")
@click.option("--only", help="Deliver only these campaigns (or record kinds), comma-separated, e.g. "
                             "win_back,birthday; the others are skipped.")
@click.option("--group", help="Consumer group (default loyalty-deliver.TOPIC.HOST[:PORT]).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True,
              help="At most this many requests to the receiver at once.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds an attempt waits for the receiver's answer.")
@click.option("--max-attempts", type=click.IntRange(1), default=10, show_default=True,
              help="A record is parked on TOPIC-undelivered after this many failed attempts...")
@click.option("--max-seconds", type=click.FloatRange(0), default=3600.0, show_default=True,
              help="... or once retrying would take longer than this.")
@click.option("--backoff", "backoff_base_s", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Seconds of the first retry's backoff bound; it doubles each retry (full jitter).")
@click.option("--backoff-max", "backoff_cap_s", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Largest backoff bound in seconds.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), envvar="LOYALTY_DELIVER_METRICS_PORT",
              help="Serve Prometheus /metrics on this port (default: not served).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address /metrics listens on.")
@friendly
def deliver(broker: str, broker_kind: str, topic: str, url: str, secret_file: str, only: Optional[str],
            group: Optional[str], concurrency: int, timeout_s: float, max_attempts: int, max_seconds: float,
            backoff_base_s: float, backoff_cap_s: float, metrics_port: Optional[int], metrics_host: str) -> None:
    """POST every record of --topic to --url, signed, at least once and in order per customer, until stopped.

    An offset is committed only after a 2xx; a record that cannot be delivered is parked on TOPIC-undelivered.
    """
    from tools.deliver import run_deliverer  # here, so that `loyalty --help` starts without the Kafka clients
    from tools.delivery_attempts import DeliveryConfig, receiver_host
    settings = settings_from(broker, broker_kind)
    config = DeliveryConfig(topic=topic, url=_check_url(url), secret=_secret(secret_file),
                            group_id=group or f"loyalty-deliver.{topic}.{receiver_host(url)}",
                            only=_only(only), concurrency=concurrency, timeout_s=timeout_s,
                            max_attempts=max_attempts, max_seconds=max_seconds, backoff_base_s=backoff_base_s,
                            backoff_cap_s=backoff_cap_s)
    run_deliverer(settings, config, metrics_port, metrics_host)
