"""`loyalty broker` and `loyalty topics`: the embedded broker in the foreground, and the application's topics."""
from __future__ import annotations

import signal
import sys

import click

from streams.kafka_auth import KAFKA_AUTH_ENV
from streams.settings import DEFAULTS, WORKER_ENV_WITHOUT_FLAG, parse_broker
from tools.cli_common import broker_option, check_broker, env_epilog, friendly, setting_option, settings_from


@click.command(epilog=env_epilog({"RUST_LOG": "tansu's log level (default warn)"}))
@setting_option("--broker", setting="broker", envvar="LOYALTY_BROKER", help="Address to listen on.")
@friendly
def broker(broker: str) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground; data lives in memory."""
    from tools.broker import EmbeddedBroker  # here: `loyalty --help` starts without the Kafka clients
    host, port = parse_broker(check_broker(broker))[0]
    embedded = EmbeddedBroker(log=sys.stderr)
    # SIGTERM must stop tansu too, and may come as soon as the port opens: while tansu starts it is only
    # noted (an exit inside Popen would orphan tansu), then it exits through the `finally` below.
    stop_asked: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stop_asked.append(signum))
    try:
        embedded.start(host, port)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if stop_asked:
            sys.exit(0)
        click.echo(f"embedded broker listening on {embedded.url} (pid {embedded.pid}); Ctrl-C stops it", err=True)
        embedded.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        embedded.stop()


@click.group()
def topics() -> None:
    """Manage the application's topics."""


@topics.command("create", epilog=env_epilog({
    "LOYALTY_ERASURE_DAYS": WORKER_ENV_WITHOUT_FLAG["LOYALTY_ERASURE_DAYS"], **KAFKA_AUTH_ENV}),
    help=f"""Create every topic with the configured partitions (idempotent).

    The customer table's changelog is compacted and the DLQ keeps records LOYALTY_ERASURE_DAYS days (default
    {DEFAULTS['erasure_days']}), so personal data leaves them after an erasure; topics that already exist keep
    their configs.
    """)
@broker_option
@setting_option("--partitions", setting="partitions", type=int, envvar="LOYALTY_PARTITIONS")
@setting_option("--replication", setting="replication", type=int, envvar="LOYALTY_REPLICATION")
@setting_option("--app-id", setting="app_id", envvar="LOYALTY_APP_ID",
                help="The workers' app id, which names the customer table's changelog topic.")
@friendly
def topics_create(broker: str, broker_kind: str, partitions: int, replication: int, app_id: str) -> None:
    from tools.broker import create_topics, wait_for_broker  # here: the CLI starts without the Kafka clients
    settings = settings_from(broker, broker_kind, partitions=partitions, replication=replication, app_id=app_id)
    wait_for_broker(settings.broker, timeout_s=10)
    actual = create_topics(settings.broker, settings.topic_partitions(), replication_factor=replication,
                           configs=settings.topic_configs())
    for name, count in actual.items():
        click.echo(f"{name:<24} {count} partitions")
