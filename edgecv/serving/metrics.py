"""Prometheus metrics (prometheus_client), one registry per server, exposed at TF Serving's path
/monitoring/prometheus/metrics. The names are edgecv's own (TF Serving's are
`:tensorflow:serving:...`): request count by API, signature and HTTP/gRPC code, request latency,
batch sizes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self, model_name: str):
        self.registry = CollectorRegistry()
        self.model = model_name
        self.requests = Counter("edgecv_serving_requests", "Requests answered, by API, signature and status code",
                                ["model", "api", "signature", "code"], registry=self.registry)
        self.latency = Histogram("edgecv_serving_request_latency_seconds", "Time from request to answer",
                                 ["model", "api"], registry=self.registry)
        self.batch = Histogram("edgecv_serving_batch_size", "Examples per model call (dynamic batching)",
                               ["model"], buckets=BATCH_BUCKETS, registry=self.registry)

    def count(self, api: str, signature: str, code) -> None:
        self.requests.labels(self.model, api, signature, str(code)).inc()

    def observe(self, api: str, seconds: float) -> None:
        self.latency.labels(self.model, api).observe(seconds)

    def batch_ran(self, rows: int) -> None:
        self.batch.labels(self.model).observe(rows)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
