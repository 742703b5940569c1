"""/api/v1 of operations: pools, backfills, the cluster, the event log (haflow's and
Airflow's shape), the configuration, who is asking. Routes of `haflow.web.api.bp`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from haflow import status
from haflow.core.ids import check_pool_name, check_text
from haflow.dag.schedule import backfill_intervals, local_instant
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore.records import BackfillRow, EventRow
from haflow.web import serialize as s
from haflow.web.api import (
    ID_PATTERN,
    BadInput,
    bp,
    checked_arg,
    collection,
    json_object,
    ordered,
    page_args,
    str_arg,
    user_name,
)
from haflow.web.auth import principal, requires
from haflow.web.context import web
from haflow.web.openapi import (
    EVENT_ORDERS,
    POOL_ORDERS,
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
    items = ordered([s.pool_json(p) for p in rows], POOL_ORDERS)
    return collection("pools", items[offset : offset + limit], len(rows), limit, offset)


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
    masked = [checked_arg("update_mask", m) for m in request.args.getlist("update_mask")]
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
    dag_id = str_arg("dag_id")
    rows = web().repo.backfills.list(dag_id, limit=offset + limit)
    items = [_backfill_json(b) for b in rows[offset : offset + limit]]
    return collection("backfills", items, len(rows), limit, offset)


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
        actor=user_name(),
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
    """A page of the event log, newest first (`order_by` an id or time field without `-`:
    oldest first), filtered by `kind_arg` (a kind, `*` a wildcard) and `dag_id`, each event
    in `shape`."""
    limit, offset = page_args()
    kind, dag_id = str_arg(kind_arg), str_arg("dag_id")
    order = str_arg("order_by") or "-id"
    if order.removeprefix("-") not in EVENT_ORDERS:
        raise BadInput(
            f"order_by must be one of {sorted(EVENT_ORDERS)}, '-' first to reverse", "order_by"
        )
    rows, total = web().repo.overview.recent_events(
        kinds=[kind] if kind else None,
        dag_id=dag_id,
        limit=limit,
        offset=offset,
        oldest_first=not order.startswith("-"),
    )
    return collection(key, [shape(e) for e in rows], total, limit, offset)


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
    wanted = str_arg("section")
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


@bp.get("/me")
@requires("read")
def me() -> Response:
    p = principal()
    assert p is not None
    return jsonify({"username": p.username, "role": p.role, "auth": p.via})
