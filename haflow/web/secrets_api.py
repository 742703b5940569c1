"""The REST API's variables and connections, in the shapes of Airflow's stable API v1 (so its
clients work): `/api/v1/variables` and `/api/v1/connections`.

Reading needs the `read` action, writing `edit`; what a role sees of a value is decided in
`secret_fields`. A Viewer may list variables (values masked) but not read one. Writes answer
200 with the object, as Airflow does (POST of a variable sets it whether or not it exists).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request
from werkzeug.wrappers import Response

from haflow.web import secret_fields as f
from haflow.web.api import check_path, json_object, page_args
from haflow.web.auth import principal, requires
from haflow.web.context import web

bp = Blueprint("secrets_api", __name__, url_prefix="/api/v1")
bp.url_value_preprocessor(check_path)

VARIABLE_FIELDS = frozenset({"key", "value", "description"})


def _sees_secrets() -> bool:
    p = principal()
    return p is not None and p.can("see_secrets")


def _updates(body: dict[str, Any], updatable: frozenset[str]) -> dict[str, Any]:
    """The fields of a PATCH to apply: those of `update_mask` (Airflow's query parameter,
    repeated or comma-separated) when given, else every updatable one in the body."""
    raw = request.args.getlist("update_mask")
    if not raw:
        changes = {k: v for k, v in body.items() if k in updatable}
    else:
        names = {n.strip() for item in raw for n in item.split(",") if n.strip()}
        unknown = sorted(names - updatable)
        if unknown:
            raise f.BadField(
                f"update_mask: {unknown[0][:60]!r} cannot be updated; "
                f"updatable: {', '.join(sorted(updatable))}",
                "update_mask",
            )
        missing = sorted(names - set(body))
        if missing:
            raise f.BadField(
                f"update_mask names {missing[0]} but the body has no such field", missing[0]
            )
        changes = {k: body[k] for k in names}
    if not changes:
        raise f.BadField(f"nothing to change: give one of {', '.join(sorted(updatable))}", "body")
    return changes


def _same_id(body: dict[str, Any], field: str, path_id: str) -> None:
    if field in body and body[field] != path_id:
        raise f.BadField(f"{field} in the body must be the one in the path ({path_id!r})", field)


@bp.get("/variables")
@requires("read")
def list_variables() -> Response:
    limit, offset = page_args()
    variables, sees = web().repo.variables, _sees_secrets()
    items = [f.listed(v, sees) for v in variables.list(limit, offset)]
    total = variables.count()
    return jsonify({"variables": items, "total_entries": total, "limit": limit, "offset": offset})


@bp.post("/variables")
@requires("edit")
def set_variable() -> Response:
    body = json_object(set(VARIABLE_FIELDS))
    key, value = f.variable_key(body.get("key")), f.variable_value(body.get("value"))
    ctx = web()
    row = ctx.repo.variables.set(key, value, ctx.now, f.description(body.get("description")))
    return jsonify(f.variable_json(row, reveal=True))


@bp.get("/variables/<variable_key>")
@requires("read")
def get_variable(variable_key: str) -> Response:
    if not _sees_secrets():
        abort(403, "Viewers cannot read variable values; list /api/v1/variables for the keys")
    return jsonify(f.variable_json(web().repo.variables.get(variable_key), reveal=True))


@bp.patch("/variables/<variable_key>")
@requires("edit")
def patch_variable(variable_key: str) -> Response:
    body = json_object(set(VARIABLE_FIELDS))
    _same_id(body, "key", variable_key)
    changes = _updates(body, VARIABLE_FIELDS - {"key"})
    ctx = web()
    current = ctx.repo.variables.get(variable_key)
    value = f.variable_value(changes["value"]) if "value" in changes else current.value
    text = f.description(changes.get("description"))
    row = ctx.repo.variables.set(variable_key, value, ctx.now, text)
    return jsonify(f.variable_json(row, reveal=True))


@bp.delete("/variables/<variable_key>")
@requires("edit")
def delete_variable(variable_key: str) -> tuple[str, int]:
    ctx = web()
    ctx.repo.variables.delete(variable_key, ctx.now)
    return "", 204


@bp.get("/connections")
@requires("read")
def list_connections() -> Response:
    limit, offset = page_args()
    connections, sees = web().repo.connections, _sees_secrets()
    items = [f.connection_json(c, sees) for c in connections.list(limit, offset)]
    total = connections.count()
    return jsonify({"connections": items, "total_entries": total, "limit": limit, "offset": offset})


@bp.post("/connections")
@requires("edit")
def add_connection() -> Response:
    body = json_object({"connection_id", *f.CONN_FIELDS})
    conn_id = f.connection_id(body.pop("connection_id", None))
    conn = f.new_connection(conn_id, f.connection_fields(body))
    ctx = web()
    ctx.repo.connections.add(conn, ctx.now)
    return jsonify(f.connection_json(conn, sees_secrets=True))


@bp.get("/connections/<connection_id>")
@requires("read")
def get_connection(connection_id: str) -> Response:
    conn = web().repo.connections.get(connection_id)
    return jsonify(f.connection_json(conn, _sees_secrets()))


@bp.patch("/connections/<connection_id>")
@requires("edit")
def patch_connection(connection_id: str) -> Response:
    """Change the fields given (a password left out is kept, null clears it)."""
    body = json_object({"connection_id", *f.CONN_FIELDS})
    _same_id(body, "connection_id", connection_id)
    changes = f.connection_fields(_updates(body, f.CONN_FIELDS))
    ctx = web()
    current = ctx.repo.connections.get(connection_id)
    if changes.get("extra"):
        changes["extra"] = f.keep_masked(changes["extra"], current.extra)
    conn = ctx.repo.connections.update(connection_id, changes, ctx.now)
    return jsonify(f.connection_json(conn, sees_secrets=True))


@bp.delete("/connections/<connection_id>")
@requires("edit")
def delete_connection(connection_id: str) -> tuple[str, int]:
    ctx = web()
    ctx.repo.connections.delete(connection_id, ctx.now)
    return "", 204
