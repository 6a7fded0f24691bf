"""The on-call alerts load into promtool, fire on the failures their unit test plays, and only on those."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from streams.metrics import EXPORTED_METRIC_NAMES
from tests.fixtures.promtool import run_promtool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERTS_TEST = ROOT / "deploy/prometheus/alerts.test.yml"
ALERT_NAMES = ("LoyaltyWorkerDown", "LoyaltyWorkersMissing", "LoyaltyConsumerLagGrowing", "LoyaltyDeadLettersHigh",
               "LoyaltyPartitionClockStopped", "LoyaltyDeliveriesParked", "LoyaltyCommandLatencyHigh")
# `loyalty deliver` is a process of its own, with its own metrics: not a worker's.
DELIVER_METRICS = {"loyalty_deliver_parked_total"}


def test_promtool_accepts_the_alerts(promtool):
    result = run_promtool(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERT_NAMES)} rules found" in result.stdout


def test_every_alert_has_a_unit_test_and_it_passes(promtool):
    tests = ALERTS_TEST.read_text()
    assert set(re.findall(r"alertname: (\w+)", tests)) == set(ALERT_NAMES) == \
        set(re.findall(r"- alert: (\w+)", ALERTS.read_text()))
    result = run_promtool(promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("broken", [
    ('up{job="loyalty-workers"} == 0', 'up{job="loyalty-workers"} < 0'),
    ('absent(up{job="loyalty-workers"})', 'absent(up)'),
    ("[5m:1m]) > 0", "[5m:1m]) < 0"),
    ("sum(rate(loyalty_events_total[5m])) > 0.01", "sum(rate(loyalty_events_total[5m])) > 0.1"),
    ("changes(loyalty_partition_clock_seconds[15m])) == 0", "changes(loyalty_partition_clock_seconds[15m])) >= 0"),
    ("increase(loyalty_deliver_parked_total[10m])) > 0", "increase(loyalty_deliver_parked_total[10m])) > 5"),
    ("rate(loyalty_event_lag_seconds_bucket[5m]))) > 5", "rate(loyalty_event_lag_seconds_bucket[5m]))) > 10"),
], ids=ALERT_NAMES)
def test_the_alerts_unit_test_fails_on_a_broken_alert(promtool, tmp_path, broken):
    before, after = broken
    text = ALERTS.read_text()
    assert text.count(before) == 1
    (tmp_path / "alerts.yml").write_text(text.replace(before, after))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts.test.yml")
    result = run_promtool(promtool, "test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0, result.stdout


def test_the_alerts_use_only_exported_metrics():
    referenced = set(re.findall(r"\bloyalty_[A-Za-z0-9_]*", ALERTS.read_text().split("groups:", 1)[1]))
    assert referenced - DELIVER_METRICS <= EXPORTED_METRIC_NAMES, referenced - DELIVER_METRICS - EXPORTED_METRIC_NAMES


def test_prometheus_in_compose_loads_the_alerts():
    yaml = pytest.importorskip("yaml", reason="pyyaml comes with the `test` extra")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    prometheus = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["prometheus"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in prometheus["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/prometheus/alerts.yml"] in config["rule_files"]
    assert config["scrape_configs"][0]["job_name"] == "loyalty-workers"  # the job the worker alerts name
