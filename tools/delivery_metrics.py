"""Prometheus metrics of `loyalty deliver`, in a registry of its own, served on --metrics-port."""
from __future__ import annotations

from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# From one quick answer (ms) to a record that waited out retries for an hour.
DELIVERY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                            900.0, 3600.0)


class DeliveryMetrics:
    """The deliverer's counters: delivered, retried, parked, skipped; latency; lag by partition."""

    def __init__(self, topic: str) -> None:
        self.registry = CollectorRegistry()
        reg, self.topic = self.registry, topic
        self.delivered = Counter("loyalty_delivery_delivered_total", "Records the receiver answered 2xx to.",
                                 ["topic"], registry=reg).labels(topic)
        self.retries = Counter("loyalty_delivery_retries_total", "Attempts that failed and were tried again.",
                               ["topic", "reason"], registry=reg)
        self.parked = Counter("loyalty_delivery_parked_total", "Records parked on <topic>-undelivered.",
                              ["topic", "reason"], registry=reg)
        self.skipped = Counter("loyalty_delivery_skipped_total", "Records left out by --only.",
                               ["topic"], registry=reg).labels(topic)
        self.seconds = Histogram("loyalty_delivery_seconds", "From a record's first attempt to its 2xx, retries "
                                 "included.", ["topic"], buckets=DELIVERY_BUCKETS_SECONDS,
                                 registry=reg).labels(topic)
        self.lag = Gauge("loyalty_delivery_lag", "Records of a partition not yet delivered, parked or skipped "
                         "(past the committed offset).", ["topic", "partition"], registry=reg)

    def serve(self, port: Optional[int], host: str) -> None:
        """Serve /metrics on host:port in a daemon thread (port None: not served)."""
        if port is not None:
            start_http_server(port, addr=host, registry=self.registry)

    def set_lag(self, lags: dict[int, int]) -> None:
        """Set the lag gauge of each partition owned."""
        for partition, lag in lags.items():
            self.lag.labels(self.topic, str(partition)).set(lag)

    def forget(self, partitions: set[int]) -> None:
        """Drop the lag of partitions no longer owned (another member reports them)."""
        for partition in partitions:
            try:
                self.lag.remove(self.topic, str(partition))
            except KeyError:
                pass
