"""Server-rendered pages: DAGs, a DAG's grid and graph, a task instance, Cluster, Events, Pools,
Variables, Connections, errors.

Forms post back to the page routes here (never to the API), each with the session's CSRF token;
what a role may do is checked by `requires`, as in the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from haflow import status
from haflow.core.clearing import ClearScope
from haflow.core.params import InvalidParam
from haflow.core.pools import DEFAULT_POOL
from haflow.core.states import RunState, TaskState
from haflow.dag import versions
from haflow.errors import InvalidRequest, NotFound
from haflow.web import auth
from haflow.web import secret_fields as f
from haflow.web.auth import requires
from haflow.web.charts import AttemptSpan, RunSpan, durations, gantt
from haflow.web.context import web
from haflow.web.graph import layout
from haflow.web.serialize import next_run

bp = Blueprint("pages", __name__)
auth_bp = Blueprint("auth", __name__)
GRID_RUNS = 25
EVENTS_PAGE = 100


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a login link must not redirect elsewhere."""
    if not target:
        return url_for("pages.dags")
    target = "".join(ch for ch in target if ch >= " " and ch != "\x7f")  # no CR/LF, no controls
    parts = urlparse(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.dags")
    return target


@auth_bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    try:
        who = auth.verify_login(request.form.get("username", ""), request.form.get("password", ""))
    except auth.RateLimited:
        return render_template(
            "login.html", error="Too many failed logins; wait a minute.", next=""
        ), 429
    if who is None:
        error = "Wrong username or password."
        return render_template("login.html", error=error, next=request.form.get("next")), 401
    auth.log_in(who)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Response:
    auth.log_out()
    return redirect(url_for("auth.login"))


@bp.get("/")
def index() -> Response:
    return redirect(url_for("pages.dags"))


@bp.get("/dags")
@requires("read")
def dags() -> str:
    ctx = web()
    rows = ctx.repo.overview.dag_details()
    return render_template(
        "dags.html",
        dags=rows,
        run_counts=ctx.repo.overview.run_state_counts(),
        task_counts=ctx.repo.overview.task_state_counts(),
        latest=ctx.repo.overview.latest_runs(),
        next_runs={d.dag_id: next_run(d, ctx.now) for d in rows},
        import_errors=len(ctx.repo.dags.import_errors()),
    )


@bp.get("/dags/<dag_id>")
@requires("read")
def grid(dag_id: str) -> str:
    ctx = web()
    dag = ctx.repo.overview.dag_detail(dag_id)
    runs = list(reversed(ctx.repo.runs.find(dag_id, limit=GRID_RUNS)))
    cells = {
        (t.run_id, t.task_id): t
        for t in ctx.repo.overview.task_instances_of_runs([r.pk for r in runs])
    }
    active = any(r.state in ("queued", "running") for r in runs)
    spans = [
        RunSpan(
            r.run_id,
            r.state,
            (r.ended_at - r.started_at).total_seconds() if r.started_at and r.ended_at else None,
        )
        for r in runs
    ]
    return render_template(
        "grid.html",
        dag=dag,
        runs=runs,
        tasks=list(dag.structure.get("tasks", {})),
        cells=cells,
        refresh=active,
        next_run_at=next_run(dag, ctx.now),
        chart=durations(spans),
    )


@bp.get("/dags/<dag_id>/code")
@requires("read")
def dag_code(dag_id: str) -> str:
    """A code version of the DAG (its version now by default) with its files, its versions,
    and with `diff`, what changed from that version to the one shown."""
    ctx = web()
    listed = ctx.repo.dags.versions(dag_id)
    if not listed:
        raise NotFound(f"DAG {dag_id!r} has no code version yet")
    shown, files = versions.version_code(ctx.repo, dag_id, _hex_arg("version"))
    names = [n for n, _ in files.files]
    path = request.args.get("file") or files.entry
    if path not in names:
        raise NotFound(f"version {shown.code_hash[:12]} has no file {path!r}")
    diff = diff_from = None
    if request.args.get("diff"):
        diff_from, _, diff = versions.version_diff(
            ctx.repo, dag_id, _hex_arg("diff"), shown.code_hash
        )
    return render_template(
        "code.html",
        dag_id=dag_id,
        versions=listed,
        shown=shown,
        files=names,
        path=path,
        content=files.source(path),
        diff=diff,
        diff_from=diff_from,
    )


def _hex_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and not re.fullmatch(r"[0-9a-f]{6,64}", value):
        raise InvalidRequest(f"{name} must be 6 to 64 hex digits of a version's hash")
    return value


@bp.get("/dags/<dag_id>/runs/<run_id>/gantt")
@requires("read")
def gantt_chart(dag_id: str, run_id: str) -> str:
    ctx = web()
    run = ctx.repo.runs.get(dag_id, run_id)
    spans = [
        AttemptSpan(task_id, a.attempt, a.state, a.queued_at, a.started_at, a.ended_at)
        for task_id, a in ctx.repo.overview.run_attempts(dag_id, run_id)
    ]
    return render_template(
        "gantt.html",
        run=run,
        chart=gantt(spans, ctx.now),
        refresh=run.state in ("queued", "running"),
    )


@bp.get("/dags/<dag_id>/graph")
@requires("read")
def graph(dag_id: str) -> str:
    ctx = web()
    dag = ctx.repo.overview.dag_detail(dag_id)
    latest = ctx.repo.runs.find(dag_id, limit=1)
    states = {}
    if latest:
        states = {
            t.task_id: t.state for t in ctx.repo.history.task_instances(dag_id, latest[0].run_id)
        }
    shape = layout(dag.structure.get("tasks", {}), states)
    return render_template("graph.html", dag=dag, layout=shape, run=latest[0] if latest else None)


@bp.post("/dags/<dag_id>/pause")
@requires("edit")
def pause(dag_id: str) -> Response:
    ctx = web()
    paused = request.form.get("paused") == "1"
    ctx.repo.dags.set_paused(dag_id, paused, ctx.now)
    flash(f"{dag_id} {'paused' if paused else 'unpaused'}")
    return redirect(
        _safe_next(request.form.get("next")) if request.form.get("next") else url_for("pages.dags")
    )


@bp.post("/dags/<dag_id>/trigger")
@requires("edit")
def trigger(dag_id: str) -> Response:
    ctx = web()
    raw = request.form.get("conf", "").strip() or "{}"
    try:
        conf = json.loads(raw)
    except ValueError as exc:
        flash(f"conf is not valid JSON: {exc}", "error")
        return redirect(url_for("pages.grid", dag_id=dag_id))
    if not isinstance(conf, dict):
        flash("conf must be a JSON object", "error")
        return redirect(url_for("pages.grid", dag_id=dag_id))
    try:
        conf.update(_form_params(ctx.repo.overview.dag_detail(dag_id).structure))
        run = ctx.repo.runs.trigger(
            dag_id, conf, ctx.now, run_id=request.form.get("run_id") or None
        )
    except InvalidRequest as exc:
        flash(str(exc), "error")
        return redirect(url_for("pages.grid", dag_id=dag_id))
    flash(f"triggered {run.run_id}")
    return redirect(url_for("pages.grid", dag_id=dag_id))


def _form_params(structure: dict[str, Any]) -> dict[str, Any]:
    """The trigger form's param fields as typed values (an empty field: the default);
    InvalidParam naming the field when one cannot be read as its type."""
    out: dict[str, Any] = {}
    for name, schema in (structure.get("params") or {}).items():
        raw = request.form.getlist(f"param:{name}")
        if not raw or raw[0] == "":
            continue
        kind = schema.get("type") if isinstance(schema.get("type"), str) else "string"
        try:
            out[name] = _typed(kind, raw[0], schema)
        except ValueError:
            raise InvalidParam(
                f"param {name!r} must be of type {kind}, got {raw[0]!r}", name
            ) from None
    return out


def _typed(kind: str, text: str, schema: dict[str, Any]) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "boolean":
        return text == "true"
    if kind in ("array", "object"):
        return json.loads(text)
    if schema.get("enum") and text not in schema["enum"]:  # an enum of numbers, say
        matches = [v for v in schema["enum"] if str(v) == text]
        return matches[0] if matches else text
    return text


@bp.get("/dags/<dag_id>/runs/<run_id>/tasks/<task_id>")
@requires("read")
def task_instance(dag_id: str, run_id: str, task_id: str) -> str:
    repo = web().repo
    ti = repo.history.task_instance(dag_id, run_id, task_id)
    attempts = repo.history.attempts(ti.id)
    chosen = request.args.get("attempt", type=int) or (attempts[-1].attempt if attempts else 0)
    log = repo.history.log_since(ti.id, chosen) if chosen else None
    returned = next((a.result for a in attempts if a.attempt == chosen), None)
    return render_template(
        "task_instance.html",
        ti=ti,
        run=repo.runs.get(dag_id, run_id),
        attempts=attempts,
        chosen=chosen,
        log=log,
        result=None if returned is None else _pretty(returned),
    )


RESULT_SHOWN = 20000
"""Characters of a result the task instance page shows (the API gives all of it)."""


def _pretty(text: str) -> str:
    shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    if len(shown) <= RESULT_SHOWN:
        return shown
    return shown[:RESULT_SHOWN] + f"\n... ({len(shown) - RESULT_SHOWN} more characters in the API)"


@bp.post("/dags/<dag_id>/runs/<run_id>/clear")
@requires("edit")
def clear(dag_id: str, run_id: str) -> Response:
    ctx = web()
    task_ids = request.form.getlist("task_id")
    scope = ClearScope(
        downstream=request.form.get("downstream") == "1",
        only_failed=request.form.get("only_failed") == "1",
    )
    ids = ctx.repo.runs.clear(dag_id, run_id, task_ids, ctx.now, scope, actor=_me())
    flash(f"cleared {len(ids)} task instance(s) of {run_id}: {', '.join(ids) or 'none'}")
    if len(task_ids) == 1:
        return redirect(
            url_for("pages.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_ids[0])
        )
    return redirect(url_for("pages.grid", dag_id=dag_id))


@bp.post("/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/mark")
@requires("edit")
def mark_ti(dag_id: str, run_id: str, task_id: str) -> Response:
    ctx = web()
    state = _marked(request.form.get("state"))
    changed = ctx.repo.runs.mark_task(dag_id, run_id, task_id, TaskState(state), ctx.now, _me())
    flash(f"{task_id} {'marked' if changed else 'was already'} {state}")
    return redirect(url_for("pages.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_id))


@bp.post("/dags/<dag_id>/runs/<run_id>/mark")
@requires("edit")
def mark_run(dag_id: str, run_id: str) -> Response:
    ctx = web()
    state = _marked(request.form.get("state"))
    changed = ctx.repo.runs.mark(dag_id, run_id, RunState(state), ctx.now, _me())
    flash(f"run {run_id} marked {state}; {len(changed)} task(s) changed")
    return redirect(url_for("pages.grid", dag_id=dag_id))


def _marked(state: str | None) -> str:
    if state not in ("success", "failed"):
        raise InvalidRequest("state must be success or failed")
    return state


def _me() -> str:
    me = auth.principal()
    assert me is not None  # `requires` let the request in
    return me.username


@bp.get("/cluster")
@requires("read")
def cluster() -> str:
    ctx = web()
    return render_template("cluster.html", c=status.overview(ctx.repo, ctx.settings, ctx.now))


@bp.get("/events")
@requires("read")
def events() -> str:
    page = max(request.args.get("page", 1, type=int), 1)
    kind = request.args.get("kind") or None
    dag_id = request.args.get("dag_id") or None
    rows, total = web().repo.overview.recent_events(
        kinds=[kind] if kind else None,
        dag_id=dag_id,
        limit=EVENTS_PAGE,
        offset=(page - 1) * EVENTS_PAGE,
    )
    pages = max((total + EVENTS_PAGE - 1) // EVENTS_PAGE, 1)
    return render_template(
        "events.html", events=rows, total=total, page=page, pages=pages, kind=kind, dag_id=dag_id
    )


@bp.get("/pools")
@requires("read")
def pools() -> str:
    return render_template("pools.html", pools=web().repo.pools.list(), default_pool=DEFAULT_POOL)


@bp.post("/pools")
@requires("edit")
def set_pool() -> Response:
    ctx = web()
    name = request.form.get("name", "").strip()
    try:
        slots = int(request.form.get("slots", ""))
    except ValueError:
        flash("slots must be a whole number", "error")
        return redirect(url_for("pages.pools"))
    try:
        pool = ctx.repo.pools.set(name, slots, ctx.now, request.form.get("description") or None)
    except InvalidRequest as exc:
        flash(str(exc), "error")
        return redirect(url_for("pages.pools"))
    flash(f"pool {pool.name}: {pool.slots} slots")
    return redirect(url_for("pages.pools"))


@bp.post("/pools/<name>/delete")
@requires("edit")
def delete_pool(name: str) -> Response:
    ctx = web()
    try:
        ctx.repo.pools.delete(name, ctx.now)
    except InvalidRequest as exc:
        flash(str(exc), "error")
    else:
        flash(f"deleted pool {name}")
    return redirect(url_for("pages.pools"))


def _acted(act: Callable[[], object], done: str, page: str) -> Response:
    """Do what a form asked (`act`), flash `done` or why it could not be done, and go back to
    `page`."""
    try:
        act()
    except (InvalidRequest, NotFound) as exc:
        flash(str(exc), "error")
    else:
        flash(done)
    return redirect(url_for(page))


SECRETS_PAGE = 100  # variables or connections a page lists (each decrypted to be shown)


def _paged(total: int) -> tuple[int, int, int]:
    """The page asked for (`?page=`, from 1), how many there are, and its first row."""
    pages = max((total + SECRETS_PAGE - 1) // SECRETS_PAGE, 1)
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    return page, pages, (page - 1) * SECRETS_PAGE


def _sees_secrets() -> bool:
    me = auth.principal()
    return me is not None and me.can("see_secrets")


@bp.get("/variables")
@requires("read")
def variables() -> str:
    group = web().repo.variables
    page, pages, offset = _paged(group.count())
    sees, rows = _sees_secrets(), group.list(SECRETS_PAGE, offset)
    shown = [{**f.listed(v, sees), "sensitive": v.sensitive} for v in rows]
    return render_template("variables.html", variables=shown, page=page, pages=pages)


@bp.post("/variables")
@requires("edit")
def set_variable() -> Response:
    """Set a variable; an edit form of a sensitive one (`keep_if_empty`) keeps the stored value
    when its value is left empty (it is never filled in). A browser sends a textarea's line
    breaks as CRLF: they are read back as LF."""
    ctx, form = web(), request.form
    try:
        key = f.variable_key(form.get("key", "").strip())
        value = f.variable_value(form.get("value", "").replace("\r\n", "\n"))
        if not value and form.get("keep_if_empty"):
            value = ctx.repo.variables.get(key).value
        ctx.repo.variables.set(key, value, ctx.now, f.description(form.get("description", "")))
    except (InvalidRequest, NotFound) as exc:
        flash(str(exc), "error")
    else:
        flash(f"variable {key} set")
    return redirect(url_for("pages.variables"))


@bp.post("/variables/<key>/delete")
@requires("edit")
def delete_variable(key: str) -> Response:
    ctx = web()
    done = f"deleted variable {key}"
    return _acted(lambda: ctx.repo.variables.delete(key, ctx.now), done, "pages.variables")


@bp.get("/connections")
@requires("read")
def connections() -> str:
    group = web().repo.connections
    page, pages, offset = _paged(group.count())
    sees, rows = _sees_secrets(), group.list(SECRETS_PAGE, offset)
    shown = [f.connection_json(c, sees, indent=2) for c in rows]
    return render_template("connections.html", connections=shown, page=page, pages=pages)


@bp.post("/connections")
@requires("edit")
def add_connection() -> Response:
    ctx = web()
    try:
        conn_id = f.connection_id(request.form.get("connection_id", "").strip())
        fields = f.form_connection_fields(request.form)
        ctx.repo.connections.add(f.new_connection(conn_id, fields), ctx.now)
    except InvalidRequest as exc:
        flash(str(exc), "error")
    else:
        flash(f"connection {conn_id} added")
    return redirect(url_for("pages.connections"))


@bp.post("/connections/<conn_id>")
@requires("edit")
def edit_connection(conn_id: str) -> Response:
    """Change a connection: an empty password keeps the stored one; an extra field left
    masked keeps its stored value."""
    ctx = web()

    def act() -> None:
        fields = f.form_connection_fields(request.form)
        current = ctx.repo.connections.get(conn_id)
        fields["extra"] = f.keep_masked(fields["extra"], current.extra)
        ctx.repo.connections.update(conn_id, fields, ctx.now)

    return _acted(act, f"connection {conn_id} changed", "pages.connections")


@bp.post("/connections/<conn_id>/delete")
@requires("edit")
def delete_connection(conn_id: str) -> Response:
    ctx = web()
    done = f"deleted connection {conn_id}"
    return _acted(lambda: ctx.repo.connections.delete(conn_id, ctx.now), done, "pages.connections")


@bp.get("/import-errors")
@requires("read")
def import_errors() -> str:
    return render_template("import_errors.html", errors=web().repo.dags.import_errors())
