"""The REST API under /api/v1: JSON in and out, every list paged, errors naming the field at fault.

Airflow's stable REST API v1 where haflow has the resource: its paths, collection keys
(`dags`, `dag_runs`, `task_instances`, ...), field names and defaults (a task instance's
PATCH and a run's clear are dry runs unless `dry_run` is false), so `apache-airflow-client`
works unchanged; haflow's additions (attempts, versions, backfills, the cluster) keep their
own names. The OpenAPI document served at /api/v1/openapi.json (see `openapi.py`) describes
exactly these routes; the schemathesis test holds the two together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from haflow import status
from haflow.core.clearing import ClearScope
from haflow.core.ids import RUN_ID, RUN_ID_RULE, check_pool_name, check_text
from haflow.core.states import RunState, TaskState
from haflow.dag import versions
from haflow.dag.schedule import backfill_intervals, local_instant
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore.records import BackfillRow, EventRow
from haflow.web import serialize as s
from haflow.web.auth import principal, requires
from haflow.web.context import web
from haflow.web.openapi import document, documented_path, query_parameters

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


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
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


def _str_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and (len(raw) > 250 or _CONTROL.search(raw)):
        raise BadInput(f"{name} must be at most 250 printable characters", name)
    return raw


def _bool_arg(name: str) -> bool | None:
    """A true/false query parameter (Airflow's clients send `True` and `False`)."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise BadInput(f"{name} must be true or false", name)
    return raw.lower() == "true"


def page_args() -> tuple[int, int]:
    return _int_arg("limit", 100, 1, MAX_LIMIT), _int_arg("offset", 0, 0, 10**9)


def _collection(key: str, items: list[Any], total: int, limit: int, offset: int) -> Response:
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


def _dag_json(dag_id: str) -> dict[str, Any]:
    ctx = web()
    detail = ctx.repo.overview.dag_detail(dag_id)
    runs = ctx.repo.overview.run_state_counts(dag_id).get(dag_id, {})
    tasks = ctx.repo.overview.task_state_counts(dag_id).get(dag_id, {})
    return s.dag_json(detail, ctx.now, runs, tasks)


@bp.get("/openapi.json")
@requires("read")
def openapi() -> Response:
    return jsonify(document())


@bp.get("/dags")
@requires("read")
def list_dags() -> Response:
    """Airflow's filters: paused, only_active (default true), tags (any of), dag_id_pattern
    (a substring of the id), order_by (dag_id, -dag_id)."""
    ctx = web()
    limit, offset = page_args()
    paused, only_active = _bool_arg("paused"), _bool_arg("only_active")
    rows = ctx.repo.overview.dag_details(active_only=only_active is not False)
    if paused is not None:
        rows = [d for d in rows if d.is_paused == paused]
    tags = [_checked_arg("tags", t) for t in request.args.getlist("tags")]
    if tags:
        rows = [d for d in rows if set(tags) & set(d.tags)]
    pattern = _str_arg("dag_id_pattern")
    if pattern:
        rows = [d for d in rows if pattern in d.dag_id]
    order = _str_arg("order_by") or "dag_id"
    if order.lstrip("-") != "dag_id":
        raise BadInput("order_by must be dag_id or -dag_id", "order_by")
    rows = sorted(rows, key=lambda d: d.dag_id, reverse=order.startswith("-"))
    runs, tasks = ctx.repo.overview.run_state_counts(), ctx.repo.overview.task_state_counts()
    items = [
        s.dag_json(d, ctx.now, runs.get(d.dag_id, {}), tasks.get(d.dag_id, {}))
        for d in rows[offset : offset + limit]
    ]
    return _collection("dags", items, len(rows), limit, offset)


def _checked_arg(name: str, raw: str) -> str:
    if len(raw) > 250 or _CONTROL.search(raw):
        raise BadInput(f"{name} must be at most 250 printable characters", name)
    return raw


@bp.get("/dags/<dag_id>")
@requires("read")
def get_dag(dag_id: str) -> Response:
    return jsonify(_dag_json(dag_id))


@bp.patch("/dags/<dag_id>")
@requires("edit")
def patch_dag(dag_id: str) -> Response:
    """Pause or unpause; `update_mask` (Airflow's) may name is_paused only."""
    masked = [_checked_arg("update_mask", m) for m in request.args.getlist("update_mask")]
    if any(m != "is_paused" for m in masked):
        raise BadInput("update_mask may name is_paused only", "update_mask")
    body = json_object({"is_paused"})
    paused = body.get("is_paused")
    if not isinstance(paused, bool):
        raise BadInput("is_paused must be true or false", "is_paused")
    ctx = web()
    ctx.repo.dags.set_paused(dag_id, paused, ctx.now)
    return jsonify(_dag_json(dag_id))


@bp.patch("/dags")
@requires("edit")
def patch_dags() -> Response:
    """Pause or unpause every active DAG whose id holds `dag_id_pattern` (required, as in
    Airflow); the DAGs changed."""
    masked = [_checked_arg("update_mask", m) for m in request.args.getlist("update_mask")]
    if any(m != "is_paused" for m in masked):
        raise BadInput("update_mask may name is_paused only", "update_mask")
    pattern = _str_arg("dag_id_pattern")
    if not pattern:
        raise BadInput("dag_id_pattern must name the DAGs to change", "dag_id_pattern")
    body = json_object({"is_paused"})
    paused = body.get("is_paused")
    if not isinstance(paused, bool):
        raise BadInput("is_paused must be true or false", "is_paused")
    ctx = web()
    chosen = [d.dag_id for d in ctx.repo.overview.dag_details(active_only=True)]
    chosen = [dag_id for dag_id in chosen if pattern in dag_id]
    for dag_id in chosen:
        ctx.repo.dags.set_paused(dag_id, paused, ctx.now)
    items = [_dag_json(dag_id) for dag_id in chosen]
    return _collection("dags", items, len(items), len(items), 0)


@bp.delete("/dags/<dag_id>")
@requires("edit")
def delete_dag(dag_id: str) -> tuple[str, int]:
    """Delete the DAG's metadata (runs, task instances, versions; its events stay); 409 while
    a run is queued or running. A DAG whose file is still in the folder comes back."""
    ctx = web()
    try:
        ctx.repo.retention.delete_dag(dag_id, ctx.now)
    except Conflict:
        raise
    except InvalidRequest as exc:  # queued or running runs
        raise Conflict(str(exc)) from None
    return "", 204


@bp.get("/dags/<dag_id>/details")
@requires("read")
def dag_details(dag_id: str) -> Response:
    ctx = web()
    detail = ctx.repo.overview.dag_detail(dag_id)
    runs = ctx.repo.overview.run_state_counts(dag_id).get(dag_id, {})
    tasks = ctx.repo.overview.task_state_counts(dag_id).get(dag_id, {})
    return jsonify(s.dag_detail_json(detail, ctx.now, runs, tasks))


@bp.get("/dags/<dag_id>/tasks")
@requires("read")
def dag_tasks(dag_id: str) -> Response:
    """The DAG's tasks in Airflow's shape, in the order the DAG runs them."""
    detail = web().repo.overview.dag_detail(dag_id)
    items = [s.task_json(detail, tid) for tid in detail.structure.get("tasks", {})]
    return jsonify({"tasks": items, "total_entries": len(items)})


@bp.get("/dags/<dag_id>/tasks/<task_id>")
@requires("read")
def dag_task(dag_id: str, task_id: str) -> Response:
    detail = web().repo.overview.dag_detail(dag_id)
    if task_id not in detail.structure.get("tasks", {}):
        raise NotFound(f"DAG {dag_id!r} has no task {task_id!r}")
    return jsonify(s.task_json(detail, task_id))


@bp.post("/dags/<dag_id>/clearTaskInstances")
@requires("edit")
def clear_task_instances(dag_id: str) -> Response:
    """Airflow's clear across runs: the task instances of the DAG's runs (`dag_run_id`, or
    those whose logical date lies from `start_date` to `end_date`, else all) that `task_ids`,
    `only_failed` (true by default, as in Airflow) and the include flags choose; a dry run
    unless `dry_run` is false. Answers references to the task instances chosen."""
    flags = ("dry_run", "only_failed", "include_upstream", "include_downstream", "reset_dag_runs")
    ignored = ("only_running", "include_subdags", "include_parentdag", "include_future")
    body = json_object(
        {"task_ids", "dag_run_id", "start_date", "end_date", "include_past", *flags, *ignored}
    )
    for flag in (*flags, *ignored, "include_past"):
        if not isinstance(body.get(flag, False), bool):
            raise BadInput(f"{flag} must be true or false", flag)
    for flag in (*ignored, "include_past"):
        if body.get(flag):
            raise BadInput(f"{flag} is not supported by haflow", flag)
    task_ids = body.get("task_ids", [])
    if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
        raise BadInput("task_ids must be a list of task ids", "task_ids")
    scope = ClearScope(
        downstream=body.get("include_downstream", False),
        upstream=body.get("include_upstream", False),
        only_failed=body.get("only_failed", True),
    )
    ctx = web()
    dry_run = body.get("dry_run", True)
    chosen = []
    for run in _runs_to_clear(dag_id, body):
        ids = ctx.repo.runs.clear(
            dag_id, run.run_id, task_ids, ctx.now, scope, dry_run=dry_run, actor=_user()
        )
        when = s.ts(s.logical_date(run))
        chosen += [
            {"task_id": t, "dag_id": dag_id, "dag_run_id": run.run_id, "execution_date": when}
            for t in ids
        ]
    return jsonify({"task_instances": chosen})


def _runs_to_clear(dag_id: str, body: dict[str, Any]) -> list[Any]:
    repo = web().repo
    run_id = body.get("dag_run_id")
    if run_id is not None:
        if not isinstance(run_id, str):
            raise BadInput("dag_run_id must be a run's id", "dag_run_id")
        return [repo.runs.get(dag_id, run_id)]
    repo.dags.get(dag_id)
    bounds = []
    for field in ("start_date", "end_date"):
        raw = body.get(field)
        try:
            bounds.append(None if raw is None else datetime.fromisoformat(str(raw)))
        except ValueError:
            raise BadInput(f"{field} must be an ISO 8601 date and time", field) from None
        if bounds[-1] is not None and bounds[-1].tzinfo is None:
            raise BadInput(f"{field} must name its time zone (Z or +HH:MM)", field)
    start, end = bounds
    runs = repo.runs.find(dag_id, limit=10_000)
    return [
        r
        for r in runs
        if (start is None or s.logical_date(r) >= start)
        and (end is None or s.logical_date(r) <= end)
    ]


@bp.get("/dags/<dag_id>/dagRuns")
@requires("read")
def list_runs(dag_id: str) -> Response:
    """The DAG's runs, newest first; `~` for the runs of every DAG (as in Airflow)."""
    ctx = web()
    limit, offset = page_args()
    state = _str_arg("state")
    which = None if dag_id == "~" else dag_id
    if which is not None:
        ctx.repo.dags.get(which)
    rows = ctx.repo.runs.find(which, state=state, limit=limit, offset=offset)
    total = ctx.repo.overview.count_runs(which, state)
    return _collection("dag_runs", [s.run_json(r) for r in rows], total, limit, offset)


@bp.post("/dags/<dag_id>/dagRuns")
@requires("edit")
def trigger(dag_id: str) -> tuple[Response, int]:
    body = json_object({"conf", "dag_run_id"})
    conf = body.get("conf", {})
    if not isinstance(conf, dict):
        raise BadInput("conf must be a JSON object", "conf")
    run_id = body.get("dag_run_id")
    if run_id is not None and (not isinstance(run_id, str) or not RUN_ID.match(run_id)):
        raise BadInput(f"dag_run_id must be {RUN_ID_RULE}", "dag_run_id")
    if len(json.dumps(conf)) > 65536:
        raise BadInput("conf must be at most 64 KiB of JSON", "conf")
    ctx = web()
    run = ctx.repo.runs.trigger(dag_id, conf, ctx.now, run_id=run_id)
    return jsonify(s.run_json(run)), 201


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>")
@requires("read")
def get_run(dag_id: str, dag_run_id: str) -> Response:
    return jsonify(s.run_json(web().repo.runs.get(dag_id, dag_run_id)))


@bp.patch("/dags/<dag_id>/dagRuns/<dag_run_id>")
@requires("edit")
def mark_run(dag_id: str, dag_run_id: str) -> Response:
    state = _marked_state(json_object({"state"}), "state")
    ctx = web()
    ctx.repo.runs.mark(dag_id, dag_run_id, RunState(state), ctx.now, actor=_user())
    return jsonify(s.run_json(ctx.repo.runs.get(dag_id, dag_run_id)))


@bp.delete("/dags/<dag_id>/dagRuns/<dag_run_id>")
@requires("edit")
def delete_run(dag_id: str, dag_run_id: str) -> tuple[str, int]:
    """Delete a finished run with its task instances (its events stay); 409 while it runs."""
    ctx = web()
    ctx.repo.retention.delete_run(dag_id, dag_run_id, ctx.now)
    return "", 204


@bp.post("/dags/<dag_id>/dagRuns/<dag_run_id>/clear")
@requires("edit")
def clear(dag_id: str, dag_run_id: str) -> Response:
    """Clear the run's task instances (`task_ids`: those only, else all) so they run again.
    As in Airflow, a dry run unless `dry_run` is false: a dry run lists the task instances
    it would clear (`task_instances`), a real one answers the run."""
    flags = ("include_downstream", "include_upstream", "only_failed", "dry_run")
    body = json_object({"task_ids", *flags})
    task_ids = body.get("task_ids", [])
    if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
        raise BadInput("task_ids must be a list of task ids", "task_ids")
    for flag in flags:
        if not isinstance(body.get(flag, False), bool):
            raise BadInput(f"{flag} must be true or false", flag)
    scope = ClearScope(
        downstream=body.get("include_downstream", False),
        upstream=body.get("include_upstream", False),
        only_failed=body.get("only_failed", False),
    )
    ctx = web()
    dry_run = body.get("dry_run", True)
    ids = ctx.repo.runs.clear(
        dag_id, dag_run_id, task_ids, ctx.now, scope, dry_run=dry_run, actor=_user()
    )
    run = ctx.repo.runs.get(dag_id, dag_run_id)
    if not dry_run:
        return jsonify(s.run_json(run))
    chosen = set(ids)
    rows = [t for t in ctx.repo.history.task_instances(dag_id, dag_run_id) if t.task_id in chosen]
    items = [s.ti_json(t, run=run) for t in rows]
    return jsonify({"task_instances": items, "total_entries": len(items)})


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances")
@requires("read")
def list_tis(dag_id: str, dag_run_id: str) -> Response:
    limit, offset = page_args()
    repo = web().repo
    run = repo.runs.get(dag_id, dag_run_id)
    rows = repo.history.task_instances(dag_id, dag_run_id)
    items = [s.ti_json(t, run=run) for t in rows[offset : offset + limit]]
    return _collection("task_instances", items, len(rows), limit, offset)


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances/<task_id>")
@requires("read")
def get_ti(dag_id: str, dag_run_id: str, task_id: str) -> Response:
    repo = web().repo
    ti = repo.history.task_instance(dag_id, dag_run_id, task_id)
    run = repo.runs.get(dag_id, dag_run_id)
    return jsonify(s.ti_json(ti, repo.history.attempts(ti.id), run))


@bp.patch("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances/<task_id>")
@requires("edit")
def mark_ti(dag_id: str, dag_run_id: str, task_id: str) -> Response:
    """Mark the task instance success or failed. As in Airflow, a dry run unless `dry_run` is
    false; either way the answer is the task instance (as it is, or as marked)."""
    body = json_object({"new_state", "dry_run"})
    state = _marked_state(body, "new_state")
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise BadInput("dry_run must be true or false", "dry_run")
    ctx = web()
    if dry_run:
        ctx.repo.history.task_instance(dag_id, dag_run_id, task_id)  # it exists
    else:
        ctx.repo.runs.mark_task(dag_id, dag_run_id, task_id, TaskState(state), ctx.now, _user())
    return get_ti(dag_id, dag_run_id, task_id)


def _marked_state(body: dict[str, Any], field: str) -> str:
    state = body.get(field)
    if state not in ("success", "failed"):
        raise BadInput(f"{field} must be success or failed", field)
    return str(state)


def _user() -> str:
    p = principal()
    assert p is not None  # `requires` let the request in
    return p.username


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances/<task_id>/logs/<int:attempt>")
@requires("read")
def get_log(dag_id: str, dag_run_id: str, task_id: str, attempt: int) -> Response:
    """The attempt's log from `cursor` (or Airflow's `token`, the `continuation_token` of the
    previous page) on; `full_content=true` from the start."""
    repo = web().repo
    ti = repo.history.task_instance(dag_id, dag_run_id, task_id)
    if not 1 <= attempt <= max(ti.attempt, 1) or attempt > 10**6:
        raise BadInput(f"attempt must be between 1 and {max(ti.attempt, 1)}", "attempt")
    cursor = _int_arg("cursor", 0, 0, 2**62)
    token = _str_arg("token")
    if token is not None:
        if not token.isdigit() or len(token) > 19:
            raise BadInput("token must be a continuation_token this API gave", "token")
        cursor = int(token)
    if _bool_arg("full_content"):
        cursor = 0
    page = repo.history.log_since(ti.id, attempt, cursor)
    return jsonify(
        {
            "content": page.content,
            "continuation_token": str(page.cursor),
            # haflow's own
            "attempt": attempt,
            "cursor": page.cursor,
            "ended": page.ended,
        }
    )


def _slots(body: dict[str, Any]) -> int:
    slots = body.get("slots")
    if isinstance(slots, bool) or not isinstance(slots, int) or not -1 <= slots <= 1_000_000:
        raise BadInput("slots must be an int from 0 to 1000000, or -1 for no cap", "slots")
    return slots


def _description(body: dict[str, Any]) -> str | None:
    text = body.get("description")
    if text is None:
        return None
    try:
        return check_text(text, "description")
    except InvalidRequest as exc:
        raise BadInput(str(exc), "description") from None


@bp.get("/pools")
@requires("read")
def list_pools() -> Response:
    limit, offset = page_args()
    rows = web().repo.pools.list()
    items = [s.pool_json(p) for p in rows[offset : offset + limit]]
    return _collection("pools", items, len(rows), limit, offset)


@bp.post("/pools")
@requires("edit")
def create_pool() -> tuple[Response, int]:
    """Create a pool; 409 when it exists (as in Airflow: PATCH changes one)."""
    body = json_object({"name", "slots", "description", "include_deferred"})
    _no_deferred(body)
    try:
        name = check_pool_name(body.get("name"))
    except InvalidRequest as exc:
        raise BadInput(str(exc), "name") from None
    slots, description = _slots(body), _description(body)  # bad input is a 400 first
    ctx = web()
    if name in {p.name for p in ctx.repo.pools.list()}:
        raise Conflict(f"pool {name!r} exists; PATCH /pools/{name} changes it")
    pool = ctx.repo.pools.set(name, slots, ctx.now, description)
    return jsonify(s.pool_json(pool)), 201


def _no_deferred(body: dict[str, Any]) -> None:
    """Airflow's `include_deferred`: haflow has no deferred tasks, so only false is true."""
    if body.get("include_deferred", False) is not False:
        raise BadInput(
            "include_deferred must be false: haflow has no deferred tasks", "include_deferred"
        )


@bp.get("/pools/<pool_name>")
@requires("read")
def get_pool(pool_name: str) -> Response:
    return jsonify(s.pool_json(web().repo.pools.get(pool_name)))


@bp.patch("/pools/<pool_name>")
@requires("edit")
def patch_pool(pool_name: str) -> Response:
    """Change a pool's slots or description (those `update_mask` names, when given)."""
    body = json_object({"name", "slots", "description", "include_deferred"})
    _no_deferred(body)
    if body.get("name", pool_name) != pool_name:
        raise BadInput(f"name in the body must be the one in the path ({pool_name!r})", "name")
    masked = [_checked_arg("update_mask", m) for m in request.args.getlist("update_mask")]
    unknown = sorted(set(masked) - {"slots", "description"})
    if unknown:
        raise BadInput(
            f"update_mask may name slots and description, not {unknown[0]!r}", "update_mask"
        )
    if masked:
        body = {k: v for k, v in body.items() if k in masked}
    ctx = web()
    current = ctx.repo.pools.get(pool_name)
    slots = _slots(body) if "slots" in body else current.slots
    pool = ctx.repo.pools.set(pool_name, slots, ctx.now, _description(body))
    return jsonify(s.pool_json(pool))


@bp.delete("/pools/<pool_name>")
@requires("edit")
def delete_pool(pool_name: str) -> tuple[str, int]:
    ctx = web()
    ctx.repo.pools.delete(pool_name, ctx.now)
    return "", 204


def _backfill_json(b: BackfillRow) -> dict[str, Any]:
    return {
        "id": b.id,
        "dag_id": b.dag_id,
        "from_date": s.ts(b.start),
        "to_date": s.ts(b.end),
        "intervals": b.intervals,
        "max_active_runs": b.max_active_runs,
        "reset_existing": b.reset_existing,
        "state": b.state,
        "created_by": b.created_by,
        "created_at": s.ts(b.created_at),
        "completed_at": s.ts(b.ended_at),
        "runs_created": b.runs_created,
        "succeeded": b.succeeded,
        "failed": b.failed,
        "unfinished": b.unfinished,
    }


@bp.get("/backfills")
@requires("read")
def list_backfills() -> Response:
    limit, offset = page_args()
    dag_id = _str_arg("dag_id")
    rows = web().repo.backfills.list(dag_id, limit=offset + limit)
    items = [_backfill_json(b) for b in rows[offset : offset + limit]]
    return _collection("backfills", items, len(rows), limit, offset)


@bp.post("/backfills")
@requires("edit")
def create_backfill() -> tuple[Response, int]:
    body = json_object(
        {"dag_id", "from_date", "to_date", "max_active_runs", "reset_existing", "dry_run"}
    )
    dag_id = body.get("dag_id")
    if not isinstance(dag_id, str) or not ID_PATTERN.fullmatch(dag_id):
        raise BadInput(
            "dag_id must name a DAG: 1 to 250 letters, digits, '_', '.' or '-'", "dag_id"
        )
    ctx = web()
    dag = ctx.repo.overview.dag_detail(dag_id)
    bounds = []
    for field in ("from_date", "to_date"):
        try:
            bounds.append(local_instant(str(body.get(field, "")), dag.timezone, field))
        except ValueError as exc:
            raise BadInput(str(exc), field) from None
    max_runs = body.get("max_active_runs", 10)
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or not 1 <= max_runs <= 1000:
        raise BadInput("max_active_runs must be an int from 1 to 1000", "max_active_runs")
    reset, dry = body.get("reset_existing", False), body.get("dry_run", False)
    for field, flag in (("reset_existing", reset), ("dry_run", dry)):
        if not isinstance(flag, bool):
            raise BadInput(f"{field} must be true or false", field)
    intervals = backfill_intervals(
        dag.schedule, dag.timezone, dag.start_date, *bounds, dag_id=dag_id, now=ctx.now
    )
    if dry:
        listed = [{"start": s.ts(a), "end": s.ts(b)} for a, b in intervals]
        return jsonify({"dag_id": dag_id, "intervals": listed, "total_entries": len(listed)}), 200
    b = ctx.repo.backfills.create(
        dag_id,
        bounds[0],
        bounds[1],
        len(intervals),
        ctx.now,
        max_active_runs=max_runs,
        reset_existing=reset,
        actor=_user(),
    )
    return jsonify(_backfill_json(b)), 201


@bp.get("/backfills/<int:backfill_id>")
@requires("read")
def get_backfill(backfill_id: int) -> Response:
    if backfill_id > 2**62:  # past any id the metastore's integers hold
        raise BadInput("backfill_id must be at most 2**62", "backfill_id")
    return jsonify(_backfill_json(web().repo.backfills.get(backfill_id)))


@bp.get("/cluster")
@requires("read")
def cluster() -> Response:
    ctx = web()
    return jsonify(s.jsonable(status.overview(ctx.repo, ctx.settings, ctx.now)))


@bp.get("/events")
@requires("read")
def events() -> Response:
    return _event_page("events", "kind", s.event_json)


@bp.get("/eventLogs")
@requires("read")
def event_logs() -> Response:
    """The event log in Airflow's shape, newest first (`event`: a kind, `*` a wildcard)."""
    return _event_page("event_logs", "event", s.event_log_json)


def _event_page(key: str, kind_arg: str, shape: Callable[[EventRow], dict[str, Any]]) -> Response:
    """A page of the event log, newest first, filtered by `kind_arg` (a kind, `*` a
    wildcard) and `dag_id`, each event in `shape`."""
    limit, offset = page_args()
    kind, dag_id = _str_arg(kind_arg), _str_arg("dag_id")
    rows, total = web().repo.overview.recent_events(
        kinds=[kind] if kind else None, dag_id=dag_id, limit=limit, offset=offset
    )
    return _collection(key, [shape(e) for e in rows], total, limit, offset)


@bp.get("/eventLogs/<int:event_log_id>")
@requires("read")
def event_log(event_log_id: int) -> Response:
    if not 1 <= event_log_id <= 2**62:
        raise BadInput("event_log_id must be from 1 to 2**62", "event_log_id")
    found = web().repo.history.events(since_id=event_log_id - 1, limit=1)
    if not found or found[0].id != event_log_id:
        raise NotFound(f"no event {event_log_id}")
    return jsonify(s.event_log_json(found[0]))


@bp.get("/config")
@requires("admin")
def config() -> Response:
    """The effective configuration, in Airflow's shape, secrets masked; Admins only (a
    section with `section`)."""
    wanted = _str_arg("section")
    values = web().settings.as_dict(mask_secrets=True)
    if wanted is not None and wanted not in values:
        raise NotFound(f"no section [{wanted}]; sections: {', '.join(values)}")
    sections = [
        {
            "name": name,
            "options": [{"key": k, "value": _config_text(v)} for k, v in options.items()],
        }
        for name, options in values.items()
        if wanted in (None, name)
    ]
    return jsonify({"sections": sections})


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


@bp.get("/dags/<dag_id>/versions")
@requires("read")
def list_versions(dag_id: str) -> Response:
    """The DAG's code versions, newest first."""
    limit, offset = page_args()
    rows = web().repo.dags.versions(dag_id)
    items = [s.version_json(v) for v in rows[offset : offset + limit]]
    return _collection("versions", items, len(rows), limit, offset)


@bp.get("/dags/<dag_id>/versions/<version>/code")
@requires("read")
def version_code(dag_id: str, version: str) -> Response:
    """One file of a version (the DAG file unless `file` names a helper module)."""
    v, files = versions.version_code(web().repo, dag_id, _version_arg(version))
    name = _str_arg("file") or files.entry
    names = [n for n, _ in files.files]
    if name not in names:
        raise BadInput(f"version {v.code_hash[:12]} has no file {name!r}: {names}", "file")
    return jsonify(
        {**s.version_json(v), "files": names, "path": name, "content": files.source(name)}
    )


@bp.get("/dags/<dag_id>/versions/<version>/diff")
@requires("read")
def version_diff(dag_id: str, version: str) -> Response:
    """What changed from `version` to `to` (default: the DAG's version now)."""
    to = _str_arg("to")
    old, new, diff = versions.version_diff(
        web().repo, dag_id, _version_arg(version), None if to is None else _version_arg(to, "to")
    )
    return jsonify({"dag_id": dag_id, "from": old, "to": new, "diff": diff})


def _version_arg(value: str, name: str = "version") -> str | None:
    """A version named by 6 to 64 hex digits of its hash, or `current`."""
    if value == "current":
        return None
    if not re.fullmatch(r"[0-9a-f]{6,64}", value):
        raise BadInput(f"{name} must be 6 to 64 hex digits of a version's hash, or current", name)
    return value


@bp.get("/importErrors")
@requires("read")
def import_errors() -> Response:
    limit, offset = page_args()
    rows = web().repo.dags.import_errors()
    items = [
        s.import_error_json(e, offset + i + 1) for i, e in enumerate(rows[offset : offset + limit])
    ]
    return _collection("import_errors", items, len(rows), limit, offset)


@bp.get("/me")
@requires("read")
def me() -> Response:
    p = principal()
    assert p is not None
    return jsonify({"username": p.username, "role": p.role, "auth": p.via})
