"""The churn recording rules and alerts load into the real Prometheus tooling, and fire as their unit test says."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from streams.metrics import EXPORTED_METRIC_NAMES
from tests.fixtures.promtool import run_promtool as _run

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yml"
RULES_TEST = ROOT / "deploy/prometheus/rules.test.yml"
METRIC_NAME = re.compile(r"\bloyalty_[A-Za-z0-9_]*")


def test_promtool_accepts_the_rules(promtool):
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 rules found" in result.stdout


def test_the_rules_unit_test_passes_the_alert_fires_on_doubled_churn_only(promtool):
    result = _run(promtool, "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("broken", [
    ("> 2 * avg_over_time", "> 5 * avg_over_time"),  # a weaker alert: the doubled churn would not fire it
    ("increase(loyalty_dormant_transitions_total[7d])", "increase(loyalty_dormant_transitions_total[1d])"),
])
def test_the_rules_unit_test_fails_on_a_broken_rule(promtool, tmp_path, broken):
    before, after = broken
    text = RULES.read_text()
    assert before in text
    (tmp_path / "rules.yml").write_text(text.replace(before, after))
    shutil.copy(RULES_TEST, tmp_path / "rules.test.yml")
    result = _run(promtool, "test", "rules", str(tmp_path / "rules.test.yml"))
    assert result.returncode != 0, result.stdout


def test_the_rules_use_only_exported_metrics():
    referenced = set(METRIC_NAME.findall(RULES.read_text().split("groups:", 1)[1]))
    assert {"loyalty_dormant_transitions_total", "loyalty_customers_by_value", "loyalty_customers_by_tier"} <= referenced
    assert referenced <= EXPORTED_METRIC_NAMES, referenced - EXPORTED_METRIC_NAMES


def test_prometheus_in_compose_loads_the_rules_and_keeps_five_weeks():
    yaml = pytest.importorskip("yaml", reason="pyyaml comes with the `test` extra")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    prometheus = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["prometheus"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in prometheus["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/prometheus/rules.yml"] in config["rule_files"]
    retention = next(arg for arg in prometheus["command"] if arg.startswith("--storage.tsdb.retention.time="))
    assert int(retention.split("=")[1].split()[0].removesuffix("d")) >= 35  # a week and the 4 weeks before
