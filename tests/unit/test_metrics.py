"""LoyaltyMetrics exports the metrics docs/outputs.md promises, and the Grafana dashboard asks for nothing else."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import EXPORTED_METRIC_NAMES, LoyaltyMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/loyalty.json"

# The metrics of docs/outputs.md: name -> (type, label names).
CONTRACT_METRICS = {
    "loyalty_events_total": ("counter", ("event_type", "outcome")),
    "loyalty_dlq_total": ("counter", ("reason",)),
    "loyalty_points_total": ("counter", ("kind",)),
    "loyalty_points_outstanding": ("gauge", ()),
    "loyalty_campaign_triggers_total": ("counter", ("campaign",)),
    "loyalty_status_transitions_total": ("counter", ("from", "to")),
    "loyalty_tier_transitions_total": ("counter", ("from", "to")),
    "loyalty_customers": ("gauge", ("status",)),
    "loyalty_customers_by_tier": ("gauge", ("tier",)),
    "loyalty_event_lag_seconds": ("histogram", ()),
    "loyalty_processing_seconds": ("histogram", ()),
    "loyalty_consumer_lag": ("gauge", ("partition",)),
    "loyalty_partition_clock_seconds": ("gauge", ("partition",)),
}
METRIC_NAME = re.compile(r"\bloyalty_[A-Za-z0-9_:]*")


def _family_name(metric_name: str, metric_type: str) -> str:
    """Return the name prometheus_client gives a family (counters lose `_total`)."""
    return metric_name.removesuffix("_total") if metric_type == "counter" else metric_name


def _families(metrics: LoyaltyMetrics) -> dict:
    """Map family name to family for everything in the metrics' registry."""
    return {family.name: family for family in metrics.registry.collect()}


def _sample_names(metrics: LoyaltyMetrics) -> set[str]:
    """Return the sample names currently exposed by `metrics`."""
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def _walk(node: object):
    """Yield `node` and every dict and list nested in it."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def _dashboard_exprs() -> list[str]:
    """Return every PromQL expression of the dashboard, variables included."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        node["expr"]
        for node in _walk(dashboard["panels"])
        if isinstance(node, dict) and isinstance(node.get("expr"), str)
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return exprs


# LoyaltyMetrics


@pytest.mark.parametrize("name", sorted(CONTRACT_METRICS))
def test_contract_metric_has_its_type_and_labels(name):
    metric_type, label_names = CONTRACT_METRICS[name]
    metrics = LoyaltyMetrics()
    family = _families(metrics)[_family_name(name, metric_type)]
    assert family.type == metric_type
    metric = next(m for m in vars(metrics).values() if getattr(m, "_name", None) == family.name)
    assert tuple(metric._labelnames) == label_names


def test_extra_metrics_exist():
    families = _families(LoyaltyMetrics())
    assert families["loyalty_refunds_unknown_order"].type == "counter"
    assert families["loyalty_redemptions_rejected"].type == "counter"


def test_render_exposes_touched_series():
    metrics = LoyaltyMetrics()
    metrics.count_event("order.paid", "applied")
    metrics.count_ledger_points("redeem", -40)
    metrics.count_status_transition("potential", "active")
    text = metrics.render().decode()
    assert 'loyalty_events_total{event_type="order.paid",outcome="applied"} 1.0' in text
    assert 'loyalty_points_total{kind="redeem"} 40.0' in text
    assert 'loyalty_status_transitions_total{from="potential",to="active"} 1.0' in text


def test_forget_partition_removes_its_series():
    metrics = LoyaltyMetrics()
    for partition in (0, 1):
        metrics.set_consumer_lag(partition, 7)
        metrics.set_partition_clock(partition, 1_700_000_000.0)
    metrics.forget_partition(0)
    metrics.forget_partition(5)  # never assigned: nothing to remove, no error
    text = metrics.render().decode()
    assert 'partition="0"' not in text
    assert 'loyalty_consumer_lag{partition="1"} 7.0' in text
    assert 'loyalty_partition_clock_seconds{partition="1"} 1.7e+09' in text


def test_two_instances_do_not_clash():
    first, second = LoyaltyMetrics(), LoyaltyMetrics()
    first.count_event("customer.checked_in", "applied")
    assert first.registry is not second.registry
    assert "loyalty_events_total" in _sample_names(first)
    assert "loyalty_events_total" not in _sample_names(second)


def test_instance_uses_the_registry_it_is_given():
    registry = CollectorRegistry()
    metrics = LoyaltyMetrics(registry)
    assert metrics.registry is registry
    assert registry.get_sample_value("loyalty_points_outstanding") == 0.0


def test_histogram_buckets_span_their_ranges():
    metrics = LoyaltyMetrics()
    lag_bounds = metrics.event_lag_seconds._upper_bounds
    processing_bounds = metrics.processing_seconds._upper_bounds
    assert lag_bounds[0] <= 0.01 and 86400 in lag_bounds
    assert processing_bounds[0] <= 1e-5 and 1.0 in processing_bounds


# The dashboard only asks for what workers export


def test_dashboard_references_only_exported_metrics():
    exprs = _dashboard_exprs()
    # `loyalty deliver` runs apart, with metrics of its own: the deliveries panel matches them by name.
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr) if name != "loyalty_deliver_"}
    assert referenced, "the dashboard has no loyalty_ expressions"
    assert referenced <= EXPORTED_METRIC_NAMES, referenced - EXPORTED_METRIC_NAMES


def test_dashboard_has_the_on_call_panels():
    text = " ".join(_dashboard_exprs())
    for name in ("loyalty_redemptions_rejected_total", 'loyalty_reward_claims_total{outcome!="accepted"',
                 "loyalty_refunds_unknown_order_total", "loyalty_redelivered_records_total",
                 '{__name__=~"loyalty_deliver_.+_total"}', 'ALERTS{alertstate="firing"'):
        assert name in text, name


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), sorted(ids)
    cells = {}
    for panel in panels:
        box = panel["gridPos"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[x, y] = panel["title"]


def test_dashboard_shows_every_contract_metric():
    text = " ".join(_dashboard_exprs())
    missing = [name for name in CONTRACT_METRICS if name not in text]
    assert not missing


def test_dashboard_uses_the_provisioned_datasource():
    yaml = pytest.importorskip("yaml", reason="pyyaml comes with the `test` extra")
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    used = {
        source["uid"]
        for source in _walk(json.loads(DASHBOARD.read_text()))
        if isinstance(source, dict) and source.get("type") == "prometheus" and "uid" in source
    }
    assert used and used <= uids


def test_after_a_rebalance_only_the_partitions_not_assigned_again_lose_their_series():
    metrics = LoyaltyMetrics()
    for partition in (0, 1, 2):
        metrics.set_consumer_lag(partition, 7)
        metrics.set_partition_clock(partition, 1_700_000_000.0)
        metrics.set_partition_end_offset(partition, 100 + partition)
    metrics.keep_partitions([1, 2, 3])
    text = metrics.render().decode()
    assert 'partition="0"' not in text
    for partition in (1, 2):
        assert f'loyalty_consumer_lag{{partition="{partition}"}} 7.0' in text
        assert f'loyalty_partition_clock_seconds{{partition="{partition}"}} 1.7e+09' in text
        assert f'loyalty_partition_end_offset{{partition="{partition}"}} {100 + partition}.0' in text
