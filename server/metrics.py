"""Prometheus metrics: request counts and latency histograms per endpoint and per pipeline stage.

Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR (set by `sketchshop serve`)
and `/metrics` aggregates them, so the numbers cover the whole server, not one worker.
"""
from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
REQUESTS = Counter("sketchshop_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram("sketchshop_request_seconds", "HTTP request latency", ["endpoint"],
                    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
STAGE = Histogram("sketchshop_stage_seconds", "pipeline stage latency", ["stage"],
                  buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))


def observe_stages(timing_ms: dict) -> None:
    for stage, ms in timing_ms.items():
        STAGE.labels(stage).observe(ms / 1000)


def register(app: Flask) -> None:
    @app.before_request
    def _start():
        g._t0 = time.perf_counter()

    @app.after_request
    def _count(resp):
        endpoint = request.endpoint or "unknown"
        method = request.method if request.method in HTTP_METHODS else "other"  # a label per client's whim is unbounded
        REQUESTS.labels(endpoint, method, str(resp.status_code)).inc()
        LATENCY.labels(endpoint).observe(time.perf_counter() - g.get("_t0", time.perf_counter()))
        return resp

    @app.get("/metrics")
    def metrics():
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)
