"""/api/v1 of DAGs: list, get, pause (one or many), delete, details, tasks, source, code
versions, import errors. Routes of `haflow.web.api.bp`."""

from __future__ import annotations

import re
from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from haflow.dag import versions
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.web import serialize as s
from haflow.web.api import (
    BadInput,
    bool_arg,
    bp,
    checked_arg,
    collection,
    json_object,
    ordered,
    page_args,
    str_arg,
)
from haflow.web.auth import requires
from haflow.web.context import web
from haflow.web.openapi import (
    IMPORT_ERROR_ORDERS,
)


def _dag_json(dag_id: str) -> dict[str, Any]:
    ctx = web()
    detail = ctx.repo.overview.dag_detail(dag_id)
    runs = ctx.repo.overview.run_state_counts(dag_id).get(dag_id, {})
    tasks = ctx.repo.overview.task_state_counts(dag_id).get(dag_id, {})
    return s.dag_json(detail, ctx.now, runs, tasks)


@bp.get("/dags")
@requires("read")
def list_dags() -> Response:
    """Airflow's filters: paused, only_active (default true), tags (any of), dag_id_pattern
    (a substring of the id), order_by (dag_id, -dag_id)."""
    ctx = web()
    limit, offset = page_args()
    paused, only_active = bool_arg("paused"), bool_arg("only_active")
    rows = ctx.repo.overview.dag_details(active_only=only_active is not False)
    if paused is not None:
        rows = [d for d in rows if d.is_paused == paused]
    tags = [checked_arg("tags", t) for t in request.args.getlist("tags")]
    if tags:
        rows = [d for d in rows if set(tags) & set(d.tags)]
    pattern = str_arg("dag_id_pattern")
    if pattern:
        rows = [d for d in rows if pattern in d.dag_id]
    order = str_arg("order_by") or "dag_id"
    if order.lstrip("-") != "dag_id":
        raise BadInput("order_by must be dag_id or -dag_id", "order_by")
    rows = sorted(rows, key=lambda d: d.dag_id, reverse=order.startswith("-"))
    runs, tasks = ctx.repo.overview.run_state_counts(), ctx.repo.overview.task_state_counts()
    items = [
        s.dag_json(d, ctx.now, runs.get(d.dag_id, {}), tasks.get(d.dag_id, {}))
        for d in rows[offset : offset + limit]
    ]
    return collection("dags", items, len(rows), limit, offset)


@bp.get("/dags/<dag_id>")
@requires("read")
def get_dag(dag_id: str) -> Response:
    return jsonify(_dag_json(dag_id))


@bp.patch("/dags/<dag_id>")
@requires("edit")
def patch_dag(dag_id: str) -> Response:
    """Pause or unpause."""
    paused = _paused_asked()
    ctx = web()
    ctx.repo.dags.set_paused(dag_id, paused, ctx.now)
    return jsonify(_dag_json(dag_id))


def _paused_asked() -> bool:
    """The `is_paused` a PATCH of DAGs asks for (`update_mask`, Airflow's, may name it only)."""
    masked = [checked_arg("update_mask", m) for m in request.args.getlist("update_mask")]
    if any(m != "is_paused" for m in masked):
        raise BadInput("update_mask may name is_paused only", "update_mask")
    paused = json_object({"is_paused"}).get("is_paused")
    if not isinstance(paused, bool):
        raise BadInput("is_paused must be true or false", "is_paused")
    return paused


@bp.patch("/dags")
@requires("edit")
def patch_dags() -> Response:
    """Pause or unpause every active DAG whose id holds `dag_id_pattern` (required, as in
    Airflow); the DAGs changed."""
    pattern = str_arg("dag_id_pattern")
    if not pattern:
        raise BadInput("dag_id_pattern must name the DAGs to change", "dag_id_pattern")
    paused = _paused_asked()
    ctx = web()
    chosen = [d.dag_id for d in ctx.repo.overview.dag_details(active_only=True)]
    chosen = [dag_id for dag_id in chosen if pattern in dag_id]
    for dag_id in chosen:
        ctx.repo.dags.set_paused(dag_id, paused, ctx.now)
    items = [_dag_json(dag_id) for dag_id in chosen]
    return collection("dags", items, len(items), len(items), 0)


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


@bp.get("/dagSources/<file_token>")
@requires("read")
def dag_source(file_token: str) -> Response:
    """Airflow's DAG source by a DAG's `file_token` (haflow's is the DAG's id): the DAG file
    of the DAG's code version now, as the scheduler stored it."""
    _, files = versions.version_code(web().repo, file_token, None)
    return jsonify({"content": files.source(files.entry)})


@bp.get("/dags/<dag_id>/versions")
@requires("read")
def list_versions(dag_id: str) -> Response:
    """The DAG's code versions, newest first."""
    limit, offset = page_args()
    rows = web().repo.dags.versions(dag_id)
    items = [s.version_json(v) for v in rows[offset : offset + limit]]
    return collection("versions", items, len(rows), limit, offset)


@bp.get("/dags/<dag_id>/versions/<version>/code")
@requires("read")
def version_code(dag_id: str, version: str) -> Response:
    """One file of a version (the DAG file unless `file` names a helper module)."""
    v, files = versions.version_code(web().repo, dag_id, _version_arg(version))
    name = str_arg("file") or files.entry
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
    to = str_arg("to")
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
    items = ordered(
        [s.import_error_json(e, i + 1) for i, e in enumerate(rows)], IMPORT_ERROR_ORDERS
    )
    return collection("import_errors", items[offset : offset + limit], len(rows), limit, offset)
