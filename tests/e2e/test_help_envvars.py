"""Every environment variable a command reads is named in its --help; the README says how to run `loyalty`."""
from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from tests.e2e.test_cli_errors import all_commands
from tools.cli import main

ROOT = Path(__file__).resolve().parents[2]


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # unwrap


def command(path: tuple[str, ...]) -> click.Command:
    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def test_every_option_with_an_environment_variable_names_it():
    for path in all_commands():
        text = help_text(path)
        for param in command(path).params:
            if isinstance(param, click.Option) and param.envvar:
                assert f"env var: {param.envvar}" in text, (path, param.name, text)


def test_the_worker_help_names_every_variable_the_worker_reads():
    source = "".join((ROOT / "streams" / name).read_text() for name in ("settings.py", "embedded.py", "kafka_auth.py"))
    names = set(re.findall(r"\bLOYALTY_[A-Z_]+[A-Z]\b", source))
    assert {"LOYALTY_WEB_CANONICAL_URL", "LOYALTY_COMMIT_INTERVAL_S", "LOYALTY_PROGRESS_SECONDS", "LOYALTY_API_TOKEN",
            "LOYALTY_KAFKA_SASL_PASSWORD"} <= names
    text = help_text(("worker",))
    assert not {n for n in names if n not in text}, text


def test_replay_names_the_policy_variable_and_broker_the_tansu_one():
    assert "LOYALTY_POLICY" in help_text(("replay",))
    assert "RUST_LOG" in help_text(("broker",))


def test_the_readme_says_how_to_run_loyalty_after_make_demo():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/loyalty" in readme and "source .venv/bin/activate" in readme
