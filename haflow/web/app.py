"""The Flask application factory: one app per process, built from the settings and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, render_template, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from haflow.config import Settings
from haflow.config.schema import MIN_SECRET_KEY_BYTES
from haflow.config.settings import secret_key_problem
from haflow.core.clock import Clock, utcnow
from haflow.errors import (
    BackendUnavailable,
    ConfigError,
    Conflict,
    HaflowError,
    InvalidRequest,
    NotFound,
    SecretKeyError,
)
from haflow.metastore.crypto import Crypto
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.web import api, api_dags, api_ops, api_runs, auth, health, pages, secrets_api
from haflow.web.context import WebContext
from haflow.web.format import register_filters

API_ROUTES = (api_dags, api_runs, api_ops)
"""The modules whose routes `api.bp` serves: importing them adds their routes to it."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock = utcnow,
    instrument: Callable[[Flask], None] | None = None,
    min_key_bytes: int = MIN_SECRET_KEY_BYTES,
) -> Flask:
    """The web app. Raises ConfigError on an empty `[webserver] secret_key`, or one shorter than
    `min_key_bytes` (32; `haflow standalone` accepts any). `instrument`, when given, is applied
    before the auth guard (the assembly passes the metrics' one: request timing and the
    /metrics endpoint)."""
    key = settings.webserver.secret_key
    problem = secret_key_problem(key, min_key_bytes)
    if problem:
        raise ConfigError(problem)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="haflow_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.webserver.cookie_secure,
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
        MAX_CONTENT_LENGTH=1 << 20,
        JSON_SORT_KEYS=False,
    )
    if settings.webserver.proxy_count:
        n = settings.webserver.proxy_count
        # the client address and scheme haproxy sets; never a host, port or prefix from a header
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]
    engine = engine or create_engine(settings.core.sql_alchemy_conn)
    repo = Repository(
        engine,
        cluster=settings.scheduler.cluster,
        actor="web",
        crypto=Crypto(settings.core.fernet_key),
    )
    app.extensions["haflow"] = WebContext(settings, repo, clock)
    if instrument is not None:
        instrument(app)
    app.before_request(auth.guard)
    app.before_request(_known_query)
    app.after_request(_headers)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)  # with the routes of api_dags, api_runs and api_ops
    app.register_blueprint(secrets_api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(pages.auth_bp)
    app.context_processor(lambda: {"csrf_token": auth.csrf_token, "me": auth.principal()})
    register_filters(app)
    _error_handlers(app)
    return app


def _headers(resp: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    if request.endpoint not in auth.PUBLIC_ENDPOINTS:
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _known_query() -> None:
    """/api/v1 operations take only the query parameters their document declares."""
    if request.url_rule is not None and request.path.startswith("/api/v1/"):
        api.check_query(request.url_rule.rule, request.method)


def problem(status: int, detail: str, field: str | None = None) -> Response:
    """A JSON error in Airflow's shape (`type`, `title`, `status`, `detail`, `instance`): what
    went wrong and, for bad input, the field at fault (`field`, haflow's own)."""
    body: dict[str, Any] = {
        "type": f"about:blank#{status}",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if field:
        body["field"] = field
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/health", "/ready", "/metrics")


def _respond(status: int, detail: str, field: str | None = None) -> Any:
    if _wants_json():
        return problem(status, detail, field)
    return render_template("error.html", status=status, title=_title(status), detail=detail), status


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        resp = _respond(exc.code or 500, exc.description or _title(exc.code or 500))
        if exc.code == 429:
            resp = app.make_response(resp)
            resp.headers["Retry-After"] = "60"
        return resp

    @app.errorhandler(api.BadInput)
    def _bad(exc: api.BadInput) -> Any:
        return _respond(400, str(exc), exc.field)

    @app.errorhandler(NotFound)
    def _missing(exc: NotFound) -> Any:
        return _respond(404, str(exc))

    @app.errorhandler(Conflict)
    def _conflict(exc: Conflict) -> Any:
        return _respond(409, str(exc))

    @app.errorhandler(InvalidRequest)
    def _invalid(exc: InvalidRequest) -> Any:
        return _respond(400, str(exc), getattr(exc, "field", None))

    @app.errorhandler(BackendUnavailable)
    def _down(exc: BackendUnavailable) -> Any:
        return _respond(503, str(exc))

    @app.errorhandler(SecretKeyError)
    def _no_key(exc: SecretKeyError) -> Any:
        # this node's key, not the request: no retry helps until an operator sets the key
        return _respond(500, f"variables and connections are unavailable here: {exc}")

    @app.errorhandler(HaflowError)
    def _haflow(exc: HaflowError) -> Any:
        return _respond(500, str(exc))
