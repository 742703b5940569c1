"""/api/v1 of runs and task instances: list, trigger, get, mark, delete, clear (a run, or a
DAG's task instances), logs, XCom return values. Routes of `haflow.web.api.bp`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from haflow.core.clearing import ClearScope
from haflow.core.ids import check_manual_run_id
from haflow.core.limits import TEXT_BYTES
from haflow.core.states import RunState, TaskState
from haflow.errors import InvalidRequest, NotFound
from haflow.metastore.records import result_of
from haflow.metastore.repository.runs import RUN_ORDERS
from haflow.web import serialize as s
from haflow.web.api import (
    BadInput,
    bool_arg,
    bp,
    checked_arg,
    collection,
    int_arg,
    json_object,
    ordered,
    page_args,
    str_arg,
    user_name,
)
from haflow.web.auth import requires
from haflow.web.context import web
from haflow.web.openapi import (
    TI_ORDERS,
)


@bp.get("/dags/<dag_id>/dagRuns")
@requires("read")
def list_runs(dag_id: str) -> Response:
    """The DAG's runs, newest first; `~` for the runs of every DAG (as in Airflow)."""
    ctx = web()
    limit, offset = page_args()
    states = [checked_arg("state", v) for v in request.args.getlist("state")]
    order = str_arg("order_by") or "-id"
    if order.removeprefix("-") not in RUN_ORDERS:
        raise BadInput(
            f"order_by must be one of {sorted(RUN_ORDERS)}, '-' first to reverse", "order_by"
        )
    which = None if dag_id == "~" else dag_id
    if which is not None:
        ctx.repo.dags.get(which)
    rows = ctx.repo.runs.find(which, state=states, limit=limit, offset=offset, order=order)
    total = ctx.repo.overview.count_runs(which, states)
    return collection("dag_runs", [s.run_json(r) for r in rows], total, limit, offset)


@bp.post("/dags/<dag_id>/dagRuns")
@requires("edit")
def trigger(dag_id: str) -> tuple[Response, int]:
    body = json_object({"conf", "dag_run_id"})
    conf = body.get("conf", {})
    if not isinstance(conf, dict):
        raise BadInput("conf must be a JSON object", "conf")
    run_id = body.get("dag_run_id")
    if run_id is not None:
        try:
            check_manual_run_id(run_id, "dag_run_id")
        except InvalidRequest as exc:
            raise BadInput(str(exc), "dag_run_id") from exc
    if len(json.dumps(conf)) > TEXT_BYTES:  # as stored: ASCII JSON, a byte a character
        raise BadInput(f"conf must be at most {TEXT_BYTES} bytes of JSON", "conf")
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
    ctx.repo.runs.mark(dag_id, dag_run_id, RunState(state), ctx.now, actor=user_name())
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
    body = json_object({"task_ids", *CLEAR_FLAGS})
    task_ids, scope, dry_run = _clear_asked(body, only_failed=False)
    ctx = web()
    ids = ctx.repo.runs.clear(
        dag_id, dag_run_id, task_ids, ctx.now, scope, dry_run=dry_run, actor=user_name()
    )
    run = ctx.repo.runs.get(dag_id, dag_run_id)
    if not dry_run:
        return jsonify(s.run_json(run))
    chosen = set(ids)
    rows = [t for t in ctx.repo.history.task_instances(dag_id, dag_run_id) if t.task_id in chosen]
    items = [s.ti_json(t, run=run) for t in rows]
    return jsonify({"task_instances": items, "total_entries": len(items)})


@bp.post("/dags/<dag_id>/clearTaskInstances")
@requires("edit")
def clear_task_instances(dag_id: str) -> Response:
    """Airflow's clear across runs: the task instances of the DAG's runs (`dag_run_id`, or
    those whose logical date lies from `start_date` to `end_date`, else all) that `task_ids`,
    `only_failed` (true by default, as in Airflow) and the include flags choose; a dry run
    unless `dry_run` is false. Answers references to the task instances chosen."""
    unsupported = (
        *("only_running", "include_subdags", "include_parentdag", "include_future"),
        "include_past",
    )
    body = json_object(
        {"task_ids", "dag_run_id", "start_date", "end_date", "reset_dag_runs", *CLEAR_FLAGS}
        | set(unsupported)
    )
    for flag in (*unsupported, "reset_dag_runs"):
        if not isinstance(body.get(flag, False), bool):
            raise BadInput(f"{flag} must be true or false", flag)
        if flag in unsupported and body.get(flag):
            raise BadInput(f"{flag} is not supported by haflow", flag)
    task_ids, scope, dry_run = _clear_asked(body, only_failed=True)
    ctx = web()
    chosen = []
    for run in _runs_to_clear(dag_id, body):
        ids = ctx.repo.runs.clear(
            dag_id, run.run_id, task_ids, ctx.now, scope, dry_run=dry_run, actor=user_name()
        )
        when = s.ts(s.logical_date(run))
        chosen += [
            {"task_id": t, "dag_id": dag_id, "dag_run_id": run.run_id, "execution_date": when}
            for t in ids
        ]
    return jsonify({"task_instances": chosen})


CLEAR_FLAGS = ("include_downstream", "include_upstream", "only_failed", "dry_run")


def _clear_asked(body: dict[str, Any], only_failed: bool) -> tuple[list[str], ClearScope, bool]:
    """What a clear's body asks: the task ids (none: every task), the scope, and whether it
    is a dry run (Airflow's default). `only_failed` is the default of that flag."""
    task_ids = body.get("task_ids", [])
    if not isinstance(task_ids, list) or not all(isinstance(t, str) for t in task_ids):
        raise BadInput("task_ids must be a list of task ids", "task_ids")
    for flag in CLEAR_FLAGS:
        if not isinstance(body.get(flag, False), bool):
            raise BadInput(f"{flag} must be true or false", flag)
    scope = ClearScope(
        downstream=body.get("include_downstream", False),
        upstream=body.get("include_upstream", False),
        only_failed=body.get("only_failed", only_failed),
    )
    return task_ids, scope, body.get("dry_run", True)


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


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances")
@requires("read")
def list_tis(dag_id: str, dag_run_id: str) -> Response:
    limit, offset = page_args()
    repo = web().repo
    run = repo.runs.get(dag_id, dag_run_id)
    rows = repo.history.task_instances(dag_id, dag_run_id)
    items = ordered([s.ti_json(t, run=run) for t in rows], TI_ORDERS)
    return collection("task_instances", items[offset : offset + limit], len(rows), limit, offset)


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
        ctx.repo.runs.mark_task(dag_id, dag_run_id, task_id, TaskState(state), ctx.now, user_name())
    return get_ti(dag_id, dag_run_id, task_id)


def _marked_state(body: dict[str, Any], field: str) -> str:
    state = body.get(field)
    if state not in ("success", "failed"):
        raise BadInput(f"{field} must be success or failed", field)
    return str(state)


@bp.get("/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances/<task_id>/logs/<int:attempt>")
@requires("read")
def get_log(dag_id: str, dag_run_id: str, task_id: str, attempt: int) -> Response:
    """The attempt's log from `cursor` (or Airflow's `token`, the `continuation_token` of the
    previous page) on; `full_content=true` from the start."""
    repo = web().repo
    ti = repo.history.task_instance(dag_id, dag_run_id, task_id)
    if not 1 <= attempt <= max(ti.attempt, 1) or attempt > 10**6:
        raise BadInput(f"attempt must be between 1 and {max(ti.attempt, 1)}", "attempt")
    cursor = int_arg("cursor", 0, 0, 2**62)
    token = str_arg("token")
    if token is not None:
        if not token.isdigit() or len(token) > 19:
            raise BadInput("token must be a continuation_token this API gave", "token")
        cursor = int(token)
    if bool_arg("full_content"):
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


XCOM_KEY = "return_value"
"""A task's result is Airflow's XCom `return_value`: the one entry haflow keeps per task."""


XCOM_PATH = "/dags/<dag_id>/dagRuns/<dag_run_id>/taskInstances/<task_id>/xcomEntries"


def _xcom_item(dag_id: str, dag_run_id: str, task_id: str) -> tuple[dict[str, Any], str] | None:
    """The task instance's return_value entry (without its value) and the value as JSON
    text, or None when it has no result."""
    if int_arg("map_index", -1, -1, -1) != -1:
        raise BadInput("map_index must be -1: haflow maps no task", "map_index")
    repo = web().repo
    ti = repo.history.task_instance(dag_id, dag_run_id, task_id)
    attempts = repo.history.attempts(ti.id)
    text = result_of(ti, attempts)
    if text is None:
        return None
    ended = next((a.ended_at for a in attempts if a.attempt == ti.attempt), None)
    run = repo.runs.get(dag_id, dag_run_id)
    item = {
        "key": XCOM_KEY,
        "timestamp": s.ts(ended or ti.ended_at) or "",
        "execution_date": s.ts(s.logical_date(run)) or "",
        "map_index": -1,
        "task_id": task_id,
        "dag_id": dag_id,
    }
    return item, text


@bp.get(XCOM_PATH)
@requires("read")
def xcom_entries(dag_id: str, dag_run_id: str, task_id: str) -> Response:
    """Airflow's XCom entries of a task instance: its result as `return_value`, if any."""
    limit, offset = page_args()
    key = str_arg("xcom_key")
    found = _xcom_item(dag_id, dag_run_id, task_id)
    items = [found[0]] if found is not None and key in (None, XCOM_KEY) else []
    return collection("xcom_entries", items[offset : offset + limit], len(items), limit, offset)


@bp.get(XCOM_PATH + "/<xcom_key>")
@requires("read")
def xcom_entry(dag_id: str, dag_run_id: str, task_id: str, xcom_key: str) -> Response:
    """One entry with its value: JSON text (`stringify`, the default), else the value."""
    stringify, _deserialize = bool_arg("stringify"), bool_arg("deserialize")
    found = _xcom_item(dag_id, dag_run_id, task_id) if xcom_key == XCOM_KEY else None
    if found is None:
        raise NotFound(
            f"task {task_id!r} of run {dag_run_id!r} has no XCom {xcom_key!r} "
            f"(haflow keeps a task's result as {XCOM_KEY!r})"
        )
    item, text = found
    return jsonify({**item, "value": text if stringify is not False else json.loads(text)})
