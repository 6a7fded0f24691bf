"""Read a worker's /metrics page with prometheus_client's own parser."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> str:
    """GET the Prometheus text of a worker."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as response:
        assert response.headers.get_content_type() == "text/plain"
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Return {(sample name, frozenset of label items): value} of every sample in the text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def series(all_samples: dict, name: str, label: str) -> dict[str, float]:
    """Return {label value: value} of one sample name with one label, e.g. loyalty_dlq_total by reason."""
    return {dict(labels)[label]: value for (n, labels), value in all_samples.items() if n == name}


def value(all_samples: dict, name: str, **labels: str) -> float:
    """Return one sample's value (KeyError if absent)."""
    return all_samples[(name, frozenset(labels.items()))]
