"""The `loyalty` command: broker, topics, worker, produce, query, replay, demo, bench."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import click

from bench.command import bench
from schemas.timeutil import format_ms
from streams.kafka_auth import KAFKA_AUTH_ENV
from streams.settings import WORKER_ENV_WITHOUT_FLAG, parse_broker
from tools.cli_common import UserError, broker_option, check_broker, env_epilog, friendly, parse_time, settings_from
from tools.cli_query import explain, query, replay
from tools.demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """loyalty-stream: an event-sourced, real-time loyalty engine on Kafka."""


@main.command(epilog=env_epilog({"RUST_LOG": "tansu's log level (default warn)"}))
@click.option("--broker", envvar="LOYALTY_BROKER", default="kafka://127.0.0.1:9092", show_default=True,
              help="Address to listen on.")
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


@main.group()
def topics() -> None:
    """Manage the application's topics."""


@topics.command("create", epilog=env_epilog({
    "LOYALTY_ERASURE_DAYS": WORKER_ENV_WITHOUT_FLAG["LOYALTY_ERASURE_DAYS"], **KAFKA_AUTH_ENV}))
@broker_option
@click.option("--partitions", type=int, envvar="LOYALTY_PARTITIONS", default=4, show_default=True)
@click.option("--replication", type=int, envvar="LOYALTY_REPLICATION", default=1, show_default=True)
@click.option("--app-id", envvar="LOYALTY_APP_ID", default="loyalty-stream", show_default=True,
              help="The workers' app id, which names the customer table's changelog topic.")
@friendly
def topics_create(broker: str, broker_kind: str, partitions: int, replication: int, app_id: str) -> None:
    """Create every topic with the configured partitions (idempotent).

    The customer table's changelog is compacted and the DLQ keeps records LOYALTY_ERASURE_DAYS days (default 7),
    so personal data leaves them after an erasure; topics that already exist keep their configs.
    """
    from tools.broker import create_topics, wait_for_broker  # here: the CLI starts without the Kafka clients
    settings = settings_from(broker, broker_kind, partitions=partitions, replication=replication, app_id=app_id)
    wait_for_broker(settings.broker, timeout_s=10)
    actual = create_topics(settings.broker, settings.topic_partitions(), replication_factor=replication,
                           configs=settings.topic_configs())
    for name, count in actual.items():
        click.echo(f"{name:<24} {count} partitions")


@main.command(epilog=env_epilog({**WORKER_ENV_WITHOUT_FLAG, **KAFKA_AUTH_ENV}))
@broker_option
@click.option("--clock", type=click.Choice(["wall", "event"]), default="wall", show_default=True,
              help="wall: the leader broadcasts clock.tick every --tick-seconds; event: time moves with events only.")
@click.option("--tick-seconds", type=click.FloatRange(min=0, min_open=True), envvar="LOYALTY_TICK_SECONDS",
              help="Wall-clock tick interval (default: [clock] tick_seconds of the policy, 60).")
@click.option("--web-port", type=click.IntRange(1, 65535), envvar="LOYALTY_WEB_PORT", default=6066, show_default=True,
              help="HTTP port of this worker; each worker on a host needs its own.")
@click.option("--web-host", envvar="LOYALTY_WEB_HOST", default="127.0.0.1", show_default=True,
              help="Address the HTTP server binds.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="LOYALTY_DATA_DIR", default="./data",
              show_default=True,
              help="Local RocksDB state (rebuilt from changelogs if deleted); one worker per directory.")
@click.option("--partitions", type=int, envvar="LOYALTY_PARTITIONS", default=4, show_default=True)
@click.option("--app-id", envvar="LOYALTY_APP_ID", default="loyalty-stream", show_default=True,
              help="Consumer group and changelog prefix; workers with the same id share the work.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), envvar="LOYALTY_POLICY",
              help="A loyalty.toml overriding the default policy.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="LOYALTY_LOG_FORMAT", default="text",
              show_default=True, help="Lifecycle log lines as text or JSON lines.")
@click.option("--progress-seconds", type=click.FloatRange(min=0), envvar="LOYALTY_PROGRESS_SECONDS", default=30,
              show_default=True,
              help="Log a progress line (events applied, events/s, lag, clocks) this often; 0: never.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve HTTP on a non-loopback --web-host without LOYALTY_API_TOKEN (anyone who reaches it can "
                   "read every customer).")
@friendly
def worker(broker: str, broker_kind: str, clock: str, tick_seconds: Optional[float], web_port: int, web_host: str,
           data_dir: str, partitions: int, app_id: str, policy_file: Optional[str], log_format: str,
           progress_seconds: float, insecure_no_auth: bool) -> None:
    """Run a stream worker; several workers with one --app-id split the partitions."""
    # here, when the command runs: `loyalty --help` starts without the Kafka clients
    from schemas.policy import load_policy
    from streams.worker import check_web_auth, check_web_port, lock_data_dir, run_worker
    from tools.broker import wait_for_broker
    settings = settings_from(broker, broker_kind, clock=clock, tick_seconds=tick_seconds, web_port=web_port,
                             web_host=web_host, data_dir=Path(data_dir), partitions=partitions, app_id=app_id,
                             policy_file=policy_file, progress_seconds=progress_seconds)
    check_web_auth(settings, insecure_no_auth)
    load_policy(policy_file)  # fail fast with a clear message on a bad policy file
    # A second worker on this data dir or web port stops here, in one line, before anything waits.
    with lock_data_dir(settings.data_dir):  # held while the worker runs
        check_web_port(settings.web_host, settings.web_port)
        # and on a broker that is not there, saying what it waits for
        wait_for_broker(settings.broker, timeout_s=15, say=lambda line: click.echo(line, err=True))
        run_worker(settings, log_format)


@main.command(epilog=env_epilog(KAFKA_AUTH_ENV))
@broker_option
@click.argument("file", required=False, type=click.File("rb"))
@click.option("--synthetic", type=int, help="Send a synthetic history of about N events.")
@click.option("--customers", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--end", help="End the --synthetic history at this time: 'now' (for a worker on the wall clock) "
                            "or RFC 3339 (default: 2026-02-25).")
@click.option("--tick", "tick_at", help="Broadcast a clock.tick at this RFC 3339 time to every partition.")
@friendly
def produce(broker: str, broker_kind: str, file, synthetic: Optional[int], customers: int, seed: int,
            end: Optional[str], tick_at: Optional[str]) -> None:
    """Send JSON-lines events from FILE (or - for stdin) in file order, a --synthetic history, or a --tick.

    A line over the broker's message size limit is reported, skipped, and the rest sent; the exit code is then 1.
    """
    from tools.produce import read_lines, send_documents, send_lines, tick_event  # here: the CLI starts faster
    from tools.synthetic import parse_end, synthetic_history
    chosen = [x for x in (file, synthetic, tick_at) if x is not None]
    if len(chosen) != 1:
        raise UserError("give exactly one of FILE, --synthetic N or --tick T")
    if end is not None and synthetic is None:
        raise UserError("--end goes with --synthetic N")
    settings = settings_from(broker, broker_kind)
    if tick_at is not None:
        sent = send_documents(settings, [tick_event(format_ms(parse_time(tick_at, "--tick")))])
    elif synthetic is not None:
        if synthetic < 1 or customers < 1:
            raise UserError("--synthetic and --customers must be positive")
        sent = send_documents(settings, synthetic_history(synthetic, customers, seed, end_ms=parse_end(end)))
    else:
        skipped: list[int] = []

        def report(line: int, message: str) -> None:
            skipped.append(line)
            click.echo(message, err=True)
        sent = send_lines(settings, read_lines(file), on_skip=report)
        if skipped:  # the other lines were sent; exit 1 so that a script notices the gap
            click.echo(f"sent {sent} events to customer-events; {len(skipped)} line(s) skipped", err=True)
            raise click.exceptions.Exit(1)
    click.echo(f"sent {sent} events to customer-events", err=True)


@main.command()
def schema() -> None:
    """Print the JSON Schema of a customer-events message (also in schemas/customer-event.schema.json)."""
    from schemas.jsonschema import render  # here: only this command needs it
    click.echo(render().decode(), nl=False)


main.add_command(query)
main.add_command(explain)
main.add_command(replay)
main.add_command(demo)
main.add_command(bench)


def _show_envvars(command: click.Command) -> None:
    """Name each option's environment variable in --help, for every command (tools/demo.py's included)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    for sub in getattr(command, "commands", {}).values():
        _show_envvars(sub)


_show_envvars(main)
