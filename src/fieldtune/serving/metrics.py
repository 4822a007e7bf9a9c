"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

- ``fieldtune_requests_total{route, method, status}``: HTTP requests
  (route = path template or "unmatched")
- ``fieldtune_request_duration_seconds{route}``: request latency histogram
- ``fieldtune_batch_size``: texts per model call (micro-batching at work when > 1)
- ``fieldtune_inference_duration_seconds``: seconds per model call
- ``fieldtune_errors_total{type}``: error answers by type (payload_too_large, invalid_request, ...)
- ``fieldtune_model_info{model_version, task}``: always 1

With ``--workers N`` each worker process keeps its own counters; a scrape sees the worker that
answered it.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """The counters and histograms of one server."""

    def __init__(self, model_version: str, task: str) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "fieldtune_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "fieldtune_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram("fieldtune_batch_size", "texts per model call", buckets=BATCH_BUCKETS, registry=reg)
        self.inference = Histogram(
            "fieldtune_inference_duration_seconds",
            "seconds per model call",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.errors = Counter("fieldtune_errors", "error answers by type", ["type"], registry=reg)
        self.reloads = Counter("fieldtune_model_reloads", "hot reloads of a newly promoted champion", registry=reg)
        self.model_info = Gauge("fieldtune_model_info", "the served model", ["model_version", "task"], registry=reg)
        self.model_info.labels(model_version, task).set(1)

    def set_model(self, model_version: str, task: str) -> None:
        """After a hot reload: the info gauge names only the model now served."""
        self.model_info.clear()
        self.model_info.labels(model_version, task).set(1)
        self.reloads.inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def count_error(self, type: str) -> None:
        self.errors.labels(type).inc()

    def render(self) -> tuple[bytes, str]:
        """(exposition text, content type) for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request with its final status and latency."""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(
                route_name(scope), scope.get("method", "?"), status, time.perf_counter() - start
            )


def route_name(scope: dict) -> str:
    """The matched route's path template; never the raw path (unbounded label values)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
