"""Prometheus metrics of one server, in its own registry (no module-level state)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """Request latency, batch sizes, queue depth and cache hits/misses, labelled by model."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.latency = Histogram("dcpipe_serve_request_seconds", "Time to answer an inference request",
                                 ["model", "protocol", "code"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("dcpipe_serve_batch_size", "Instances in one model call (before padding)",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("dcpipe_serve_queue_depth", "Requests waiting for the model", ["model"],
                                 registry=self.registry)
        self.cache_hits = Counter("dcpipe_serve_cache_hits", "Instances answered from the cache", ["model"],
                                  registry=self.registry)
        self.cache_misses = Counter("dcpipe_serve_cache_misses", "Instances sent to the model", ["model"],
                                    registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
