"""The REST API under /api/v1: JSON in and out, every list paged, errors naming the field at fault.

Airflow's stable REST API v1 where haflow has the resource: its paths, collection keys
(`dags`, `dag_runs`, `task_instances`, ...), field names and defaults (a task instance's
PATCH and a run's clear are dry runs unless `dry_run` is false), so `apache-airflow-client`
works unchanged; haflow's additions (attempts, versions, backfills, the cluster) keep their
own names. The OpenAPI document served at /api/v1/openapi.json (see `openapi.py`) describes
exactly these routes; the schemathesis test holds the two together.

This module holds the blueprint and what every route shares (reading and checking the query
and the body, paging, ordering); the routes are in `api_dags`, `api_runs` and `api_ops`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from haflow.web.auth import principal, requires
from haflow.web.openapi import (
    document,
    documented_path,
    query_parameters,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


MAX_LIMIT = 1000


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,250}")  # a DAG's id (haflow.dag.dag.check_id)


class BadInput(ValueError):
    """A request parameter or body field is malformed; `field` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@bp.url_value_preprocessor
def check_path(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    for name, value in (values or {}).items():
        if isinstance(value, str) and (len(value) > 250 or _CONTROL.search(value)):
            raise BadInput(f"{name} must be at most 250 printable characters", name)


def check_query(rule: str, method: str) -> None:
    """Refuse a query parameter the operation does not take, naming it: a filter of Airflow's
    that haflow lacks must not be ignored silently (the answer would look filtered)."""
    declared = query_parameters().get((documented_path(rule), method.lower()))
    if declared is None:
        return  # not an operation of the document (the document itself)
    unknown = sorted(set(request.args) - declared)
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise BadInput(f"unknown query parameter {unknown[0]!r}; allowed: {allowed}", unknown[0])


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be an integer, got {raw!r}", name) from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}, got {value}", name)
    return value


def str_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and (len(raw) > 250 or _CONTROL.search(raw)):
        raise BadInput(f"{name} must be at most 250 printable characters", name)
    return raw


def bool_arg(name: str) -> bool | None:
    """A true/false query parameter (Airflow's clients send `True` and `False`)."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise BadInput(f"{name} must be true or false", name)
    return raw.lower() == "true"


def ordered(items: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """`items` in Airflow's `order_by` (one of `fields`, `-` first to reverse; absent: as
    they are); items without the value come last either way."""
    order = str_arg("order_by")
    if order is None:
        return items
    field = order.removeprefix("-")
    if field not in fields:
        raise BadInput(
            f"order_by must be one of {sorted(fields)}, '-' first to reverse", "order_by"
        )
    present = [i for i in items if i.get(field) is not None]
    present.sort(key=lambda i: i[field], reverse=order.startswith("-"))
    return present + [i for i in items if i.get(field) is None]


def page_args() -> tuple[int, int]:
    return int_arg("limit", 100, 1, MAX_LIMIT), int_arg("offset", 0, 0, 10**9)


def collection(key: str, items: list[Any], total: int, limit: int, offset: int) -> Response:
    """A page of a collection under `key` (Airflow's name for it), with the total."""
    return jsonify({key: items, "total_entries": total, "limit": limit, "offset": offset})


MAX_JSON_DEPTH = 64


def json_object(allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object: finite numbers only, nested at most MAX_JSON_DEPTH deep."""
    data = _json_body() if request.is_json else None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object", "body")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadInput(f"unknown field {unknown[0]!r}; allowed: {sorted(allowed)}", unknown[0])
    return data


def _json_body() -> Any:
    def finite_only(name: str) -> Any:
        raise BadInput(f"numbers must be finite (got {name})", "body")

    try:
        data = json.loads(request.get_data(cache=True), parse_constant=finite_only)
    except RecursionError:
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} deep", "body") from None
    except BadInput:
        raise
    except ValueError:  # not JSON at all (UnicodeDecodeError is a ValueError too)
        return None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} deep", "body")
    return data


def json_depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


@bp.get("/openapi.json")
@requires("read")
def openapi() -> Response:
    return jsonify(document())


def checked_arg(name: str, raw: str) -> str:
    if len(raw) > 250 or _CONTROL.search(raw):
        raise BadInput(f"{name} must be at most 250 printable characters", name)
    return raw


def user_name() -> str:
    p = principal()
    assert p is not None  # `requires` let the request in
    return p.username
