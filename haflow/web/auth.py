"""Who is asking, and may they: session logins, API tokens, basic auth, roles and CSRF.

Every request passes `guard` (a before_request hook): public endpoints pass; any other needs a
principal, else the API answers 401 and pages redirect to the login page. A request that changes
something while authenticated by the session cookie must carry the session's CSRF token (form
field `csrf_token` or header `X-CSRF-Token`). API tokens and basic auth count only on `/api/*`
and `/metrics` (an `Authorization` header elsewhere is ignored: the HTML routes know sessions
only, so their forms always need the CSRF token), and a 401 never challenges with `Basic`, so a
browser never caches basic credentials for the site that a cross-site form could then ride on.
Handlers state what they need with `@requires(action)`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

from haflow.errors import NotFound
from haflow.web.context import web
from haflow.web.credentials import check_password, dummy_hash, token_digest

PUBLIC_ENDPOINTS = frozenset(
    {"health.health", "health.ready", "health.api_health", "health.version", "auth.login", "static"}
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("Admin", "Op", "Viewer"),
    "edit": ("Admin", "Op"),
    "admin": ("Admin",),
    # a variable's value, a connection's login and extra; a Viewer sees none of them
    "see_secrets": ("Admin", "Op"),
}
RATE_WINDOW = timedelta(minutes=1)
SESSION_LIFETIME = timedelta(hours=12)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    via: str  # "session", "token" or "basic"

    def can(self, action: str) -> bool:
        return self.role in ACTIONS[action]


def principal() -> Principal | None:
    found: Principal | None = g.get("principal")
    return found


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _takes_credentials() -> bool:
    """Where an `Authorization` header (token or basic) counts: the API and /metrics."""
    return _is_api() or request.path == "/metrics"


def _unauthorized(message: str) -> Response:
    if _takes_credentials():
        resp = jsonify({"status": 401, "title": "Unauthorized", "detail": message})
        resp.status_code = 401
        # Bearer, not Basic: browsers prompt for (and then cache) Basic credentials only
        resp.headers["WWW-Authenticate"] = 'Bearer realm="haflow"'
        return resp
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def client_address() -> str:
    return request.remote_addr or "unknown"


class RateLimited(Exception):
    """Too many failed logins from this address, or for this user, within the window."""


def verify_login(username: str, password: str) -> Principal | None:
    """Check a username and password, counting the attempt toward the limits (per address and
    per user, `[webserver] login_rate_limit` each within a minute) before the check, so that
    simultaneous attempts cannot all slip under the limit. Raises RateLimited over a limit."""
    ctx = web()
    row, by_address, by_user = ctx.repo.users.reserve_login(
        client_address(), username, ctx.now, ctx.now - RATE_WINDOW
    )
    limit = ctx.settings.webserver.login_rate_limit
    if by_address > limit or by_user > limit:
        ctx.repo.users.forget_login(row)  # refused unchecked: not a failure of its own
        raise RateLimited
    try:
        user = ctx.repo.users.get(username)
    except NotFound:
        user = None
    # an unknown user is checked against a dummy hash: the same work, so the same time
    stored = user.password_hash if user is not None else dummy_hash()
    if check_password(stored, password) and user is not None:
        ctx.repo.users.forget_login(row)
        return Principal(user.username, user.role, "session")
    return None


def log_in(p: Principal) -> None:
    """Open a session: a random id in the signed cookie, its digest in the metastore, so that
    logging out (or a change of password or role) ends it for every copy of the cookie."""
    ctx = web()
    sid = secrets.token_urlsafe(32)
    ctx.repo.users.open_session(p.username, token_digest(sid), ctx.now, SESSION_LIFETIME)
    session.clear()
    session.permanent = True
    session["sid"] = sid
    csrf_token()


def log_out() -> None:
    sid = session.get("sid")
    if sid:
        ctx = web()
        ctx.repo.users.end_session(token_digest(str(sid)), ctx.now, "logged out")
    session.clear()


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and hmac.compare_digest(str(expected), given)


def _from_session() -> Principal | None:
    sid = session.get("sid")
    if not sid:
        return None
    ctx = web()
    user = ctx.repo.users.session_user(token_digest(str(sid)), ctx.now)
    if user is None:  # logged out, expired, or ended by a password or role change
        session.clear()
        return None
    return Principal(user.username, user.role, "session")


def _from_header(header: str) -> Principal | Response:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        found = _from_token(value)
        if found is None:
            return _unauthorized("the API token is not valid (unknown, expired or revoked)")
        return found
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _unauthorized("malformed basic credentials")
        try:
            found = verify_login(name, password)
        except RateLimited:
            abort(429, "too many failed logins from this address or for this user; wait a minute")
        if found is None:
            return _unauthorized("wrong username or password")
        return Principal(found.username, found.role, "basic")
    return _unauthorized(f"unsupported authorization scheme {scheme!r}; use Bearer or Basic")


def identify() -> Principal | None:
    """Who is asking on a public endpoint, if anyone: a session or an API token (never basic
    auth, so no password is checked here); None for an anonymous request."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return _from_token(value) if scheme.lower() == "bearer" else _from_session()


def _from_token(value: str) -> Principal | None:
    """The user of a live (neither revoked nor expired) API token."""
    ctx = web()
    user = ctx.repo.users.by_token(token_digest(value.strip()), ctx.now)
    return None if user is None else Principal(user.username, user.role, "token")


def guard() -> Response | None:
    """before_request: authenticate, then refuse what the principal may not do."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method in UNSAFE_METHODS and not csrf_ok():
            return _csrf_refused()
        return None
    header = request.headers.get("Authorization") if _takes_credentials() else None
    if header:
        found = _from_header(header)
        if isinstance(found, Response):
            return found
        g.principal = found
        return None
    p = _from_session()
    if p is None:
        return _unauthorized("log in first (session), or send an API token or basic auth")
    if request.method in UNSAFE_METHODS and not csrf_ok():
        return _csrf_refused()
    g.principal = p
    return None


def _csrf_refused() -> Response:
    abort(400, "the form's CSRF token is missing or wrong; reload the page and try again")


def requires(action: str) -> Callable[[F], F]:
    """Refuse (403) a principal whose role does not allow `action` (read, edit, admin)."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            p = principal()
            if p is None or not p.can(action):
                role = p.role if p else "anonymous"
                abort(403, f"role {role} may not {action} here")
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
