"""/metrics of the webserver and the per-request timing behind it (prometheus-client; under
gunicorn the workers share a multiprocess directory set up by `assembly.web.run_webserver`);
the assembly installs it on the web app (`create_app(instrument=instrument)`)."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from haflow.metrics.webserver import observe_request, render_metrics
from haflow.web.auth import requires

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@requires("read")
def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, content_type=content_type)


def _start() -> None:
    g.metrics_t0 = time.perf_counter()


def _observe(resp: Response) -> Response:
    started = g.get("metrics_t0")
    if started is not None:
        endpoint = request.endpoint or "unmatched"
        observe_request(endpoint, request.method, resp.status_code, time.perf_counter() - started)
    return resp


def instrument(app: Flask) -> None:
    """Time every request, the refused ones included (so register before the auth guard)."""
    app.before_request(_start)
    app.after_request(_observe)
    app.register_blueprint(bp)
