"""/health (Airflow's shape, plus the leader), /ready (for the load balancer), and Airflow's
/api/v1/health and /api/v1/version: no login.

/ready answers 503 only when this node cannot reach the metastore: a webserver is useful as long
as it can read and write the metastore, whoever leads. /health answers 503 when the metastore is
unreachable or no live leader has heartbeated within `[webserver] scheduler_health_threshold`.
/api/v1/health says the same as Airflow's does: always 200, each part healthy or unhealthy.

Before login both say how things are, not where: the leader's host and pid, its epoch and
mode, and a driver's error (which names the database's host, port and user) are shown only to
a logged-in session or an API token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from haflow import __version__, status
from haflow.errors import HaflowError
from haflow.web import auth
from haflow.web.context import web

bp = Blueprint("health", __name__)


def _json(body: dict[str, Any], ok: bool) -> Response:
    resp = jsonify(body)
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _known() -> bool:
    """Whether the asker logged in; not if that cannot be told (the metastore is away)."""
    try:
        return auth.identify() is not None
    except HaflowError:
        return False


@bp.get("/ready")
def ready() -> Response:
    try:
        web().repo.ping()
    except HaflowError as exc:
        body = {"status": "unavailable"}
        if _known():
            body["detail"] = str(exc)
        return _json(body, False)
    return _json({"status": "ready"}, True)


@bp.get("/health")
def health() -> Response:
    ctx = web()
    threshold = ctx.settings.webserver.scheduler_health_threshold
    try:
        lead = status.leadership(ctx.repo, ctx.now, threshold)
    except HaflowError as exc:
        if not _known():
            return _json(_status_only("unhealthy", "unknown"), False)
        body = {
            "metadatabase": {"status": "unhealthy", "detail": str(exc)},
            "scheduler": {"status": "unknown", "latest_scheduler_heartbeat": None},
            "leader": None,
            "epoch": None,
            "elector_mode": None,
        }
        return _json(body, False)
    leader = lead.leader
    if not _known():
        return _json(_status_only("healthy", "healthy" if leader else "unhealthy"), bool(leader))
    body = {
        "metadatabase": {"status": "healthy"},
        "scheduler": {
            "status": "healthy" if leader else "unhealthy",
            "latest_scheduler_heartbeat": leader.heartbeat_at.isoformat() if leader else None,
        },
        "leader": leader.scheduler if leader else None,
        "epoch": lead.epoch,
        "elector_mode": leader.elector_mode if leader else None,
    }
    return _json(body, leader is not None)


@bp.get("/api/v1/health")
def api_health() -> Response:
    """Airflow's `HealthInfo`: 200 whatever it says (monitors read the statuses)."""
    resp = health()
    body = dict(resp.get_json())
    if body["scheduler"]["status"] == "unknown":  # Airflow's statuses are healthy, unhealthy
        body["scheduler"] = {**body["scheduler"], "status": "unhealthy"}
    return _json(body, True)


@bp.get("/api/v1/version")
def version() -> Response:
    return _json({"version": __version__, "git_version": None}, True)


def _status_only(metadatabase: str, scheduler: str) -> dict[str, Any]:
    return {"metadatabase": {"status": metadatabase}, "scheduler": {"status": scheduler}}
