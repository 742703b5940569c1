"""Records as JSON-able dicts: the shapes the REST API returns and its OpenAPI document states."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from haflow.dag.schedule import EVERY, parse_schedule
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


def schedule_interval(expr: str | None) -> dict[str, Any] | None:
    """A schedule as Airflow's `ScheduleInterval`: a cron expression (or preset, `@once`), or
    an `@every Ns` interval as a TimeDelta; None for manual runs only."""
    if expr is None:
        return None
    every = EVERY.fullmatch(expr.strip())
    if every:
        return _timedelta(float(every.group(1)))
    return {"__type": "CronExpression", "value": expr}


def dag_json(
    d: DagDetail, now: datetime, runs: dict[str, int], tasks: dict[str, int]
) -> dict[str, Any]:
    """A DAG in Airflow's REST API v1 shape (`DAG`), then haflow's own fields."""
    due = next_run(d, now)
    return {
        "dag_id": d.dag_id,
        "dag_display_name": d.dag_id,
        "root_dag_id": None,
        "is_paused": d.is_paused,
        "is_active": d.is_active,
        "is_subdag": False,
        "last_parsed_time": ts(d.parsed_at),
        "last_pickled": None,
        "last_expired": None,
        "scheduler_lock": None,
        "pickle_id": None,
        "default_view": "grid",
        "fileloc": d.fileloc,
        "file_token": d.dag_id,  # /dagSources/{file_token}: the DAG file of its version now
        "owners": [],
        "description": d.description,
        "schedule_interval": schedule_interval(d.schedule),
        "timetable_description": d.schedule or "Never, external triggers only",
        "tags": [{"name": t} for t in d.tags],
        "max_active_tasks": int(d.structure.get("max_active_tasks") or 16),
        "max_active_runs": d.max_active_runs,
        "has_task_concurrency_limits": any(
            t.get("max_active_tis_per_dag") for t in d.structure.get("tasks", {}).values()
        ),
        "has_import_errors": False,
        "next_dagrun": ts(due),
        "next_dagrun_data_interval_start": None,
        "next_dagrun_data_interval_end": None,
        "next_dagrun_create_after": ts(due),
        # haflow's own
        "schedule": d.schedule,
        "timezone": d.timezone,
        "catchup": d.catchup,
        "start_date": ts(d.start_date),
        "end_date": ts(d.end_date),
        "run_states": runs,
        "task_states": tasks,
        "tasks": [
            {"task_id": tid, "kind": t.get("kind", ""), "upstream": t.get("upstream", [])}
            for tid, t in d.structure.get("tasks", {}).items()
        ],
    }


def dag_detail_json(
    d: DagDetail, now: datetime, runs: dict[str, int], tasks: dict[str, int]
) -> dict[str, Any]:
    """A DAG with Airflow's `DAGDetail` fields."""
    base = dag_json(d, now, runs, tasks)
    return {
        **base,
        "concurrency": base["max_active_tasks"],
        "dag_run_timeout": None,
        "dataset_expression": None,
        "doc_md": None,
        "is_paused_upon_creation": None,
        "last_parsed": base["last_parsed_time"],
        "orientation": "LR",
        "params": d.structure.get("params") or {},
        "render_template_as_native_obj": False,
        "template_search_path": None,
    }


def _timedelta(seconds: float | None) -> dict[str, Any] | None:
    """Seconds as Airflow's `TimeDelta` (None stays None)."""
    if seconds is None:
        return None
    whole = int(seconds)
    return {
        "__type": "TimeDelta",
        "days": whole // 86400,
        "seconds": whole % 86400,
        "microseconds": round((seconds - whole) * 1_000_000),
    }


def task_json(d: DagDetail, task_id: str) -> dict[str, Any]:
    """A task of `d` in Airflow's `Task` shape, from what the scheduler stored of it."""
    tasks = d.structure.get("tasks", {})
    t = tasks[task_id]
    kind = str(t.get("kind", ""))
    return {
        "class_ref": {"module_path": "haflow.dag.tasks", "class_name": kind or "Task"},
        "task_id": task_id,
        "task_display_name": task_id,
        "owner": "",
        "start_date": ts(d.start_date),
        "end_date": ts(d.end_date),
        "trigger_rule": t.get("trigger_rule", "all_success"),
        "extra_links": [],
        "depends_on_past": bool(t.get("depends_on_past", False)),
        "is_mapped": False,
        "wait_for_downstream": False,
        "retries": float(t.get("retries", 0)),
        "queue": t.get("queue"),
        "executor": None,
        "pool": t.get("pool") or "default_pool",
        "pool_slots": float(t.get("pool_slots", 1)),
        "execution_timeout": _timedelta(t.get("execution_timeout")),
        "retry_delay": _timedelta(t.get("retry_delay")),
        "retry_exponential_backoff": t.get("retry_backoff_cap") is not None,
        "priority_weight": 1.0,
        "weight_rule": "downstream",
        "ui_color": "#fff",
        "ui_fgcolor": "#000",
        "template_fields": [],
        "downstream_task_ids": sorted(
            tid for tid, other in tasks.items() if task_id in other.get("upstream", [])
        ),
        "doc_md": None,
        # haflow's own
        "kind": kind,
        "upstream_task_ids": list(t.get("upstream", [])),
    }


def logical_date(r: RunRow) -> datetime:
    """A run's logical date as Airflow has it: a scheduled run's interval start, else (a
    manual run has no interval) the time it was triggered."""
    return r.data_interval_start or r.created_at


def run_json(r: RunRow) -> dict[str, Any]:
    """A DAG run in Airflow's REST API v1 shape (`DAGRun`), then haflow's own fields."""
    return {
        "dag_run_id": r.run_id,
        "dag_id": r.dag_id,
        "logical_date": ts(logical_date(r)),
        "execution_date": ts(logical_date(r)),
        "start_date": ts(r.started_at),
        "end_date": ts(r.ended_at),
        "data_interval_start": ts(r.data_interval_start),
        "data_interval_end": ts(r.data_interval_end),
        "last_scheduling_decision": None,
        "run_type": r.run_type,
        "state": r.state,
        "external_trigger": r.run_type == "manual",
        "conf": r.conf,
        "note": None,
        # haflow's own
        "created_at": ts(r.created_at),
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


def ti_json(
    t: TIRow, attempts: list[AttemptRow] | None = None, run: RunRow | None = None
) -> dict[str, Any]:
    """A task instance in Airflow's REST API v1 shape (`TaskInstance`; `execution_date` from
    `run`), then haflow's own fields: failures, and with `attempts` each attempt and the
    result."""
    duration = (t.ended_at - t.started_at).total_seconds() if t.started_at and t.ended_at else None
    body: dict[str, Any] = {
        "task_id": t.task_id,
        "task_display_name": t.task_id,
        "dag_id": t.dag_id,
        "dag_run_id": t.run_id,
        "execution_date": ts(logical_date(run)) if run is not None else None,
        "start_date": ts(t.started_at),
        "end_date": ts(t.ended_at),
        "duration": duration,
        "state": t.state,
        "try_number": t.attempt,
        "map_index": -1,
        "max_tries": t.retries,
        "hostname": t.worker_id or "",
        "unixname": "",
        "pool": t.pool,
        "pool_slots": t.pool_slots,
        "queue": None,
        "priority_weight": None,
        "operator": None,
        "queued_when": ts(t.queued_at),
        "pid": None,
        "executor": None,
        "executor_config": "{}",
        "sla_miss": None,
        "rendered_map_index": None,
        "rendered_fields": {},
        "trigger": None,
        "triggerer_job": None,
        "note": None,
        # haflow's own
        "failures": t.failures,
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


def event_log_json(e: EventRow) -> dict[str, Any]:
    """An event in Airflow's `EventLog` shape (`extra` is the detail as JSON text)."""
    return {
        "event_log_id": e.id,
        "when": ts(e.ts),
        "dag_id": e.dag_id,
        "task_id": e.task_id,
        "run_id": e.run_id,
        "map_index": None,
        "try_number": e.attempt,
        "event": e.kind,
        "execution_date": None,
        "owner": e.actor,
        "extra": e.detail or None,
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


def import_error_json(e: ImportErrorRow, number: int) -> dict[str, Any]:
    """An import error in Airflow's shape (`ImportError`; `import_error_id` numbers the list:
    haflow keeps only the latest scan's errors), then haflow's own fields."""
    where = f"line {e.line}: " if e.line else ""
    return {
        "import_error_id": number,
        "filename": e.fileloc,
        "stack_trace": f"{where}{e.message}",
        "timestamp": ts(e.ts),
        # haflow's own
        "fileloc": e.fileloc,
        "line": e.line,
        "message": e.message,
    }


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
        "scheduled_slots": 0,
        "deferred_slots": 0,
        "include_deferred": False,
        "description": p.description,
    }
