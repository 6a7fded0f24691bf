"""`loyalty replay`: rebuild, verify and time-travel the projections from the log."""
from __future__ import annotations

from typing import Optional

import click

from streams.kafka_auth import KAFKA_AUTH_ENV
from tools.cli_common import UserError, broker_option, env_epilog, friendly, parse_time, setting_option, settings_from


@click.command(epilog=env_epilog({"LOYALTY_POLICY": "the current policy, the one --policy is compared with",
                                   **KAFKA_AUTH_ENV}))
@broker_option
@click.option("--until", "until", help="Rebuild the state as of this event time (RFC 3339).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help="Also replay with this loyalty.toml's keys over the policy in force, and report what would change.")
@click.option("--policy-replace", is_flag=True, help="With --policy: the file is the whole policy, whatever the log changes (the old behaviour).")
@click.option("--policy-from", "policy_from", help="With --policy: apply it only from this event time (RFC 3339).")
@click.option("--verify", is_flag=True, help="Compare with the live state; exit 1 on any difference.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write the rebuilt store here: a new or empty directory, or an earlier replay store (replaced). "
                   "Default ./replay; with --verify or --policy, no store unless --out is given.")
@setting_option("--app-id", setting="app_id", envvar="LOYALTY_APP_ID")
@click.option("--json", "as_json", is_flag=True, help="Print the summary or report as JSON.")
@friendly
def replay(broker: str, broker_kind: str, until: Optional[str], policy_file: Optional[str], policy_replace: bool,
           policy_from: Optional[str], verify: bool, out: Optional[str], app_id: str, as_json: bool) -> None:
    """Rebuild the projections from the log into a fresh store; nothing is sent anywhere."""
    from tools.replay import run_replay  # here: `loyalty --help` starts without the Kafka clients
    if (policy_replace or policy_from) and not policy_file:
        raise UserError("--policy-replace and --policy-from go with --policy FILE")
    settings = settings_from(broker, broker_kind, app_id=app_id)
    ok = run_replay(settings, out=out, until_ms=parse_time(until, "--until"), policy_file=policy_file,
                    verify=verify, as_json=as_json, policy_replace=policy_replace,
                    policy_from_ms=parse_time(policy_from, "--policy-from"))
    if not ok:
        raise click.exceptions.Exit(1)
