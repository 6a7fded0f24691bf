"""`loyalty worker`: run a stream worker in the foreground."""
from __future__ import annotations

import faulthandler
import signal
import sys
from pathlib import Path
from typing import Optional

import click

from streams.kafka_auth import KAFKA_AUTH_ENV
from streams.settings import WORKER_ENV_WITHOUT_FLAG
from tools.cli_common import (broker_option, env_epilog, friendly, interrupt_on_stop_signals, setting_option,
                              settings_from)


@click.command(epilog=env_epilog({**WORKER_ENV_WITHOUT_FLAG, **KAFKA_AUTH_ENV}))
@broker_option
@setting_option("--clock", setting="clock", type=click.Choice(["wall", "event"]),
                help="wall: the leader broadcasts clock.tick every --tick-seconds; event: time moves with events only.")
@click.option("--tick-seconds", type=click.FloatRange(min=0, min_open=True), envvar="LOYALTY_TICK_SECONDS",
              help="Wall-clock tick interval (default: [clock] tick_seconds of the policy, 60).")
@setting_option("--web-port", setting="web_port", type=click.IntRange(1, 65535), envvar="LOYALTY_WEB_PORT",
                help="HTTP port of this worker; each worker on a host needs its own.")
@setting_option("--web-host", setting="web_host", envvar="LOYALTY_WEB_HOST", help="Address the HTTP server binds.")
@setting_option("--data-dir", setting="data_dir", type=click.Path(file_okay=False), envvar="LOYALTY_DATA_DIR",
                help="Local RocksDB state (rebuilt from changelogs if deleted); one worker per directory.")
@setting_option("--partitions", setting="partitions", type=int, envvar="LOYALTY_PARTITIONS")
@setting_option("--app-id", setting="app_id", envvar="LOYALTY_APP_ID",
                help="Consumer group and changelog prefix; workers with the same id share the work.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), envvar="LOYALTY_POLICY",
              help="A loyalty.toml overriding the default policy.")
@click.option("--policy-wins", type=click.Choice(["log", "file"]), envvar="LOYALTY_POLICY_WINS",
              help="When --policy differs from the policy in force in the log: which one folds (default: refuse).")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="LOYALTY_LOG_FORMAT", default="text",
              show_default=True, help="Lifecycle log lines as text or JSON lines.")
@setting_option("--progress-seconds", setting="progress_seconds", type=click.FloatRange(min=0),
                envvar="LOYALTY_PROGRESS_SECONDS",
                help="Log a progress line (events applied, events/s, lag, clocks) this often; 0: never.")
@click.option("--switch-clock", is_flag=True, envvar="LOYALTY_SWITCH_CLOCK",
              help="Start even though the group folds on the other --clock, moving the group over (stop every "
                   "other worker of the group first).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve HTTP on a non-loopback --web-host without LOYALTY_API_TOKEN (anyone who reaches it can "
                   "read every customer).")
@friendly
def worker(broker: str, broker_kind: str, clock: str, tick_seconds: Optional[float], web_port: int, web_host: str,
           data_dir: str, partitions: int, app_id: str, policy_file: Optional[str], policy_wins: Optional[str], log_format: str,
           progress_seconds: float, switch_clock: bool, insecure_no_auth: bool) -> None:
    """Run a stream worker; several workers with one --app-id split the partitions."""
    # here, when the command runs: `loyalty --help` starts without the Kafka clients
    from schemas.policy import load_policy
    from streams.worker import (check_faust, check_group_clock, check_group_policy, check_web_auth, check_web_port, lock_data_dir,
                                run_worker)
    from tools.broker import wait_for_broker
    settings = settings_from(broker, broker_kind, clock=clock, tick_seconds=tick_seconds, web_port=web_port,
                             web_host=web_host, data_dir=Path(data_dir), partitions=partitions, app_id=app_id,
                             policy_file=policy_file, policy_wins=policy_wins, progress_seconds=progress_seconds)
    check_web_auth(settings, insecure_no_auth)
    policy = load_policy(policy_file)  # fail fast with a clear message on a bad policy file
    stopped_by = interrupt_on_stop_signals()  # until Faust installs its own handlers, which stop it cleanly
    # `kill -USR1 PID` prints every thread's stack while the worker starts (then Faust's own handler prints
    # every thread's and task's stack): a start that hangs says where, and the signal never kills the worker.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        # A second worker on this data dir or web port stops here, in one line, before anything waits.
        with lock_data_dir(settings.data_dir):  # held while the worker runs
            check_web_port(settings.web_host, settings.web_port)
            check_faust()  # an untested Faust is said at once, not after waiting for the broker
            # and on a broker that is not there, saying what it waits for
            wait_for_broker(settings.broker, timeout_s=15, say=lambda line: click.echo(line, err=True))
            check_group_clock(settings, switch_clock)
            check_group_policy(settings, policy)
            run_worker(settings, log_format)
    except KeyboardInterrupt:
        click.echo("loyalty worker: stopped while starting, before it folded anything", err=True)
        sys.exit(128 + (stopped_by[-1] if stopped_by else signal.SIGINT))  # as a shell reports the signal

