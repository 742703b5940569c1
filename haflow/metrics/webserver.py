"""The webserver's metrics, independent of Flask: multiprocess set-up for gunicorn, the
/metrics body, and per-request recording.

gunicorn runs the app in several worker processes, so the webserver uses prometheus-client's
multiprocess mode: every worker records into files of PROMETHEUS_MULTIPROC_DIR and /metrics,
answered by whichever worker, adds them up. The web app serves only HTTP metrics and build
information; cluster metrics come from the schedulers and workers.

Wiring (see haflow/metrics/README.md): `prepare_multiprocess_dir()` in the gunicorn master
before it forks (or `on_starting`), `child_exit` as gunicorn's `child_exit` hook,
`render_metrics()` behind GET /metrics, `observe_request()` after every request.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from haflow.metrics.collectors import BuildInfo
from haflow.metrics.definitions import HttpMetricSet, http_metric_set
from haflow.metrics.process import (
    ENV,
    empty_directory,
    enable_multiprocess,
    multiprocess_enabled,
    private_directory,
)

_lock = threading.Lock()
_http: HttpMetricSet | None = None
_build_info_registered = False


def prepare_multiprocess_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Make the directory gunicorn's workers record into, empty it of an earlier run's files,
    and set PROMETHEUS_MULTIPROC_DIR so the workers inherit it. Call it once in the master
    before any worker starts. `path` defaults to PROMETHEUS_MULTIPROC_DIR if set, else a new
    private directory; returns the directory used."""
    chosen = path or os.environ.get(ENV)
    directory = Path(chosen) if chosen else private_directory("webserver")
    empty_directory(directory)
    enable_multiprocess(directory)
    return directory


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook: drop the live-gauge files of a worker that exited."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def render_metrics() -> tuple[bytes, str]:
    """The /metrics response body and its content type."""
    _metrics()  # so the request series exist from the first scrape
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(BuildInfo("webserver"))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    _register_build_info()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request. `endpoint` must be the route's name (e.g. Flask's
    `request.endpoint`, or "unmatched" for a 404), never the raw path: labels stay few."""
    m = _metrics()
    m.requests.labels(endpoint, method, str(status)).inc()
    m.latency.labels(endpoint, method).observe(seconds)


def _metrics() -> HttpMetricSet:
    global _http
    with _lock:
        if _http is None:
            # in multiprocess mode the files are what is served; else the default registry
            _http = http_metric_set(None if multiprocess_enabled() else REGISTRY)
        return _http


def _register_build_info() -> None:
    global _build_info_registered
    with _lock:
        if not _build_info_registered:
            REGISTRY.register(BuildInfo("webserver"))
            _build_info_registered = True
