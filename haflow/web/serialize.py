"""Records as JSON-able dicts: the shapes the REST API returns and its OpenAPI document states."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from haflow.dag.schedule import parse_schedule
from haflow.errors import HaflowError
from haflow.metastore.records import (
    AttemptRow,
    DagDetail,
    DagVersionRow,
    EventRow,
    ImportErrorRow,
    PoolRow,
    RunRow,
    TIRow,
    result_of,
)


def ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def next_run(dag: DagDetail, now: datetime) -> datetime | None:
    """When the scheduler will next create a run of `dag`, if it has a schedule."""
    try:
        sched = parse_schedule(
            dag.schedule, dag_id=dag.dag_id, fileloc=dag.fileloc, timezone=dag.timezone
        )
    except HaflowError:
        return None
    if sched is None:
        return None
    due = sched.next_due(dag.start_date, dag.last_fire_at, now, dag.catchup)
    return None if due is None or (dag.end_date is not None and due > dag.end_date) else due


def dag_json(
    d: DagDetail, now: datetime, runs: dict[str, int], tasks: dict[str, int]
) -> dict[str, Any]:
    return {
        "dag_id": d.dag_id,
        "description": d.description,
        "fileloc": d.fileloc,
        "schedule": d.schedule,
        "timezone": d.timezone,
        "is_paused": d.is_paused,
        "is_active": d.is_active,
        "tags": d.tags,
        "max_active_runs": d.max_active_runs,
        "catchup": d.catchup,
        "start_date": ts(d.start_date),
        "end_date": ts(d.end_date),
        "last_parsed_at": ts(d.parsed_at),
        "next_run_at": ts(next_run(d, now)),
        "run_states": runs,
        "task_states": tasks,
        "tasks": [
            {"task_id": tid, "kind": t.get("kind", ""), "upstream": t.get("upstream", [])}
            for tid, t in d.structure.get("tasks", {}).items()
        ],
    }


def run_json(r: RunRow) -> dict[str, Any]:
    return {
        "dag_id": r.dag_id,
        "dag_run_id": r.run_id,
        "run_type": r.run_type,
        "state": r.state,
        "conf": r.conf,
        "data_interval_start": ts(r.data_interval_start),
        "data_interval_end": ts(r.data_interval_end),
        "created_at": ts(r.created_at),
        "started_at": ts(r.started_at),
        "ended_at": ts(r.ended_at),
        "code_hash": r.code_hash,
    }


def version_json(v: DagVersionRow) -> dict[str, Any]:
    return {
        "dag_id": v.dag_id,
        "code_hash": v.code_hash,
        "file": v.entry,
        "size": v.size,
        "created_at": ts(v.created_at),
        "runs": v.runs,
        "current": v.current,
    }


def ti_json(t: TIRow, attempts: list[AttemptRow] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dag_id": t.dag_id,
        "dag_run_id": t.run_id,
        "task_id": t.task_id,
        "state": t.state,
        "attempt": t.attempt,
        "failures": t.failures,
        "retries": t.retries,
        "worker": t.worker_id,
        "queued_at": ts(t.queued_at),
        "started_at": ts(t.started_at),
        "ended_at": ts(t.ended_at),
    }
    if attempts is not None:
        body["attempts"] = [attempt_json(a) for a in attempts]
        body["result"] = _decoded(result_of(t, attempts))
    return body


def _decoded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def attempt_json(a: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "state": a.state,
        "epoch": a.epoch,
        "worker": a.worker_id,
        "queued_at": ts(a.queued_at),
        "started_at": ts(a.started_at),
        "ended_at": ts(a.ended_at),
        "reason": a.reason,
        "result": _decoded(a.result),
    }


def event_json(e: EventRow) -> dict[str, Any]:
    try:
        detail = json.loads(e.detail) if e.detail else None
    except ValueError:
        detail = e.detail
    return {
        "id": e.id,
        "ts": ts(e.ts),
        "kind": e.kind,
        "actor": e.actor,
        "epoch": e.epoch,
        "dag_id": e.dag_id,
        "dag_run_id": e.run_id,
        "task_id": e.task_id,
        "attempt": e.attempt,
        "detail": detail,
    }


def import_error_json(e: ImportErrorRow) -> dict[str, Any]:
    return {"fileloc": e.fileloc, "line": e.line, "message": e.message, "ts": ts(e.ts)}


def jsonable(value: Any) -> Any:
    """Datetimes inside plain dicts and lists (the cluster view) as ISO strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def pool_json(p: PoolRow) -> dict[str, Any]:
    """A pool as the API (and `haflow pools list`) shows it, in Airflow's field names."""
    return {
        "name": p.name,
        "slots": p.slots,
        "occupied_slots": p.occupied,
        "running_slots": p.running,
        "queued_slots": p.queued,
        "open_slots": p.open,
        "description": p.description,
    }
