"""The `loyalty` command: every sub-command in a command module of its own, and one source for the defaults."""
from __future__ import annotations

import os
from pathlib import Path

import click

from streams.settings import DEFAULTS, Settings
from tools.cli import main


def all_commands(command: click.Command = main):
    """Yield every command of the tree under `command`."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from all_commands(sub)


def test_every_sub_command_lives_in_a_command_module_and_cli_only_assembles_them():
    homes = {name: sub.callback.__module__ for name, sub in main.commands.items()}
    assert all(module.startswith("tools.cli_") or module == "bench.command" for module in homes.values()), homes
    assert {"broker", "topics", "worker", "produce", "schema", "query", "explain", "replay", "demo", "bench"} <= set(homes)


def test_an_option_named_after_a_setting_defaults_to_the_settings_default():
    checked = set()
    for command in all_commands():
        for param in command.params:
            if isinstance(param, click.Option) and param.name in DEFAULTS:
                assert param.default == DEFAULTS[param.name] and param.show_default, (command.name, param.name)
                checked.add(param.name)
    assert {"broker", "broker_kind", "partitions", "replication", "app_id", "clock", "web_port", "web_host",
            "data_dir", "progress_seconds"} <= checked
    stats = main.commands["query"].commands["stats"]
    url = next(param for param in stats.params if param.name == "url")
    assert url.default == f"http://{DEFAULTS['web_host']}:{DEFAULTS['web_port']}"  # a worker with the defaults


def test_settings_without_any_variable_take_the_defaults(monkeypatch):
    for name in [n for n in os.environ if n.startswith("LOYALTY_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    cast = {"data_dir": Path, "faust_sensor": lambda value: value == "1"}
    assert {name: getattr(settings, name) for name in DEFAULTS} == {
        name: cast.get(name, lambda value: value)(value) for name, value in DEFAULTS.items()}


def test_a_variable_overrides_the_default(monkeypatch):
    monkeypatch.setenv("LOYALTY_PARTITIONS", "9")
    monkeypatch.setenv("LOYALTY_FAUST_SENSOR", "0")
    assert (Settings().partitions, Settings().faust_sensor) == (9, False)
