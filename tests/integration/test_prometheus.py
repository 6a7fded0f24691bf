"""The worker's /metrics after the scripted history: exact counters and gauges, then scraped by a real Prometheus.

The history and the hand-worked outcomes behind every number are in tests/support/scripted_history.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from tests.fixtures.kafka import wait_for
from tests.support import scripted_history as h
from tests.support.promtext import samples, scrape, series, value
from tools.broker import free_port
from tools.processes import stop_process

pytestmark = pytest.mark.broker

PROMETHEUS = "/usr/bin/prometheus"  # Debian package `prometheus` (installed by .ci/run)

EVENTS_APPLIED = {  # by event_type, from the history
    "customer.registered": 3,   # alice, bob, carol
    "order.paid": 7,            # alice 4, bob 2, carol 1
    "order.refunded": 2,        # alice o-a3, bob o-b2
    "review.posted": 3,         # alice 1, bob 2 (the second earns nothing but is applied)
    "redemption.requested": 3,  # alice 1, bob 2 (one rejected: still applied)
    "customer.checked_in": 4,   # bob 3, carol 1
    "content.shared": 4,        # bob 4
    "points.adjusted": 1,       # bob -20
}                               # 27 in all
POINTS_MOVED = {  # by ledger kind, absolute
    "earn": 7900,     # alice 800 + 450 + 4800 + 151 = 6201, bob 300 + 199 = 499, carol 1200
    "bonus": 41,      # alice review 10; bob 5 + 5 + 2 + 2 + 2 + 10 = 26; carol 5
    "redeem": 3200,   # alice 3000 + bob 200
    "reverse": 1249,  # alice 1200 + bob 49
    "expire": 1850,   # alice's lot of 2025-03-01
    "adjust": 20,     # bob -20
}                     # 7900 + 41 - 3200 - 1249 - 1850 - 20 = 1622 outstanding
STATUS_TRANSITIONS = {
    ("potential", "active"): 4,   # alice twice (2025-01-10, 2025-04-01), bob, carol
    ("active", "potential"): 3,   # alice twice (2025-03-31, 2025-05-31), bob
    ("potential", "dormant"): 2,  # alice, bob
}
TIER_TRANSITIONS = {
    ("standard", "premium"): 2,   # alice, carol
    ("premium", "vip"): 1,        # alice
    ("vip", "premium"): 1,        # alice, by refund
    ("premium", "standard"): 1,   # alice, by time
}


def epoch_s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


@pytest.fixture(scope="module")
def run(module_cluster):
    return module_cluster, h.run_history(module_cluster)


@pytest.fixture(scope="module")
def metrics(run):
    _, worker = run
    # The final tick and its gauges are in once the stats are (run_history waits for them).
    return samples(scrape(worker.url))


def test_event_counters(metrics):
    applied = {t: v for (name, labels), v in metrics.items() if name == "loyalty_events_total"
               for d in [dict(labels)] if d["outcome"] == "applied" for t in [d["event_type"]]}
    assert applied == EVENTS_APPLIED
    assert value(metrics, "loyalty_events_total", event_type="order.paid", outcome="duplicate") == 1
    outcomes = {dict(labels)["outcome"] for (name, labels) in metrics if name == "loyalty_events_total"}
    assert outcomes == {"applied", "duplicate"}  # nothing rejected, ticks are not events
    assert series(metrics, "loyalty_dlq_total", "reason") == {}


def test_points_and_campaign_counters(metrics):
    assert series(metrics, "loyalty_points_total", "kind") == POINTS_MOVED
    assert value(metrics, "loyalty_points_outstanding") == 1622
    assert series(metrics, "loyalty_campaign_triggers_total", "campaign") == {
        "win_back": 2, "birthday": 2, "tier_upgraded": 3, "points_expiring": 1, "member_day": 0}
    assert series(metrics, "loyalty_redemptions_rejected_total", "reason") == {"insufficient_points": 1}


def test_transition_counters(metrics):
    def pairs(name):
        return {(dict(labels)["from"], dict(labels)["to"]): v for (n, labels), v in metrics.items() if n == name}
    assert pairs("loyalty_status_transitions_total") == STATUS_TRANSITIONS
    assert pairs("loyalty_tier_transitions_total") == TIER_TRANSITIONS


def test_value_and_churn_counters(metrics):
    def labelled(name, *keys):
        return {tuple(dict(labels)[k] for k in keys): v for (n, labels), v in metrics.items() if n == name}
    # none -> medium for each customer's first order; medium -> low for alice and bob (R 2)
    assert labelled("loyalty_value_transitions_total", "from", "to") == {("none", "medium"): 3, ("medium", "low"): 2}
    # alice became dormant as a premium, low customer; bob as a standard, low one
    assert labelled("loyalty_dormant_transitions_total", "tier", "value") == {("premium", "low"): 1,
                                                                              ("standard", "low"): 1}


def test_gauges(metrics):
    assert series(metrics, "loyalty_customers", "status") == {"active": 1, "potential": 0, "dormant": 2}
    assert series(metrics, "loyalty_customers_by_tier", "tier") == {"standard": 2, "premium": 1, "vip": 0}
    # scripted_history.py, "Value": carol medium, alice and bob low
    assert series(metrics, "loyalty_customers_by_value", "value") == {"high": 0, "medium": 1, "low": 2, "none": 0}
    clocks = sorted(series(metrics, "loyalty_partition_clock_seconds", "partition").values())
    # every partition got the last tick; carol's partition then her check-in
    tick, carol = epoch_s("2026-03-11T00:00:00Z"), epoch_s("2026-03-12T01:00:00Z")
    assert clocks == [tick, tick, tick, carol]


def test_histograms(metrics):
    assert value(metrics, "loyalty_event_lag_seconds_count") == 27  # one per applied event
    # every valid record is timed: 28 customer lines (27 + the duplicate) and 2 ticks x 4 partitions
    assert value(metrics, "loyalty_processing_seconds_count") == 28 + 2 * 4


def _prometheus_query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        doc = orjson.loads(response.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


@pytest.fixture
def prometheus(run, tmp_path: Path):
    """A real Prometheus scraping the worker every second, started and stopped by PID."""
    if not (os.path.exists(PROMETHEUS) or shutil.which("prometheus")):
        if os.environ.get("CI"):
            pytest.fail(f"{PROMETHEUS} is missing: CI must install the Debian package `prometheus` (.ci/run)")
        pytest.skip(f"{PROMETHEUS} is not installed (apt-get install prometheus)")
    binary = PROMETHEUS if os.path.exists(PROMETHEUS) else shutil.which("prometheus")
    _, worker = run
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: loyalty\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{worker.web_port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            with urllib.request.urlopen(base + "/-/ready", timeout=2) as response:
                return response.status == 200
        wait_for(ready, 30, "prometheus to be ready")
        yield base
    finally:
        stop_process(proc)
        log.close()


def test_a_real_prometheus_scrapes_the_worker(prometheus):
    def applied():
        result = _prometheus_query(prometheus, 'sum(loyalty_events_total{outcome="applied"})')
        return result and float(result[0]["value"][1]) == 27

    wait_for(applied, 30, "prometheus to see 27 applied events", interval_s=0.5)
    up = _prometheus_query(prometheus, 'up{job="loyalty"}')
    assert [float(r["value"][1]) for r in up] == [1.0]
    customers = {r["metric"]["status"]: float(r["value"][1]) for r in _prometheus_query(prometheus, "loyalty_customers")}
    assert customers == {"active": 1.0, "potential": 0.0, "dormant": 2.0}
    points = _prometheus_query(prometheus, 'loyalty_points_total{kind="earn"}')
    assert [float(r["value"][1]) for r in points] == [7900.0]
    triggers = _prometheus_query(prometheus, "sum by (campaign) (loyalty_campaign_triggers_total)")
    assert {r["metric"]["campaign"]: float(r["value"][1]) for r in triggers} == {
        "win_back": 2.0, "birthday": 2.0, "tier_upgraded": 3.0, "points_expiring": 1.0, "member_day": 0.0}
