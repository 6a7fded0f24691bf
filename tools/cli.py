"""The `loyalty` command: assembles the sub-commands, each a click command in its own module."""
from __future__ import annotations

import click

from bench.command import bench
from tools.cli_broker import broker, topics
from tools.cli_deliver import deliver
from tools.cli_demo import demo
from tools.cli_dlq import dlq
from tools.cli_policy import policy
from tools.cli_produce import produce, schema
from tools.cli_query import explain, query
from tools.cli_replay import replay
from tools.cli_tail import tail
from tools.cli_worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """loyalty-stream: an event-sourced, real-time loyalty engine on Kafka."""


def _show_envvars(command: click.Command) -> None:
    """Name each option's environment variable in --help, for every command."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    for sub in getattr(command, "commands", {}).values():
        _show_envvars(sub)


for _command in (broker, topics, worker, produce, schema, query, explain, replay, tail, dlq, deliver, demo,
                 bench, policy):
    main.add_command(_command)
_show_envvars(main)
