"""The OpenAPI 3.0 document of /api/v1, built from small schema pieces so it stays in step.

Where haflow has Airflow's resource, its schema is Airflow's (REST API v1, as the official
client `apache-airflow-client` 2.x reads it), with haflow's own fields after Airflow's."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from haflow import __version__
from haflow.core.states import TaskState, TriggerRule
from haflow.metastore.repository.runs import RUN_ORDERS

J = dict[str, Any]

# The fields each list may be ordered by (Airflow's `order_by`; `-` first to reverse).
TI_ORDERS = (
    *("task_id", "state", "start_date", "end_date", "duration", "try_number", "hostname"),
    *("pool", "queued_when"),
)
POOL_ORDERS = ("name", "slots", "occupied_slots", "running_slots", "queued_slots", "open_slots")
IMPORT_ERROR_ORDERS = ("import_error_id", "filename", "timestamp")
EVENT_ORDERS = ("id", "event_log_id", "ts", "when")
"""Events are kept in the order they happened: each of these lists them in that order."""


def _str(nullable: bool = False) -> J:
    return {"type": "string", "nullable": True} if nullable else {"type": "string"}


def _ts() -> J:
    return {"type": "string", "format": "date-time", "nullable": True}


def _obj(props: J, required: list[str] | None = None) -> J:
    return {"type": "object", "properties": props, "required": required or list(props)}


def _ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def _collection(item: str, key: str) -> J:
    return _obj(
        {
            key: {"type": "array", "items": _ref(item)},
            "total_entries": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        }
    )


RESULT: J = {
    "description": "What the attempt (for a task instance: the attempt it succeeded with) "
    "returned, any JSON value; null without one",
    "nullable": True,
}
COUNTS: J = {"type": "object", "additionalProperties": {"type": "integer"}}

SCHEMAS: J = {
    "Error": {
        "type": "object",
        "properties": {
            "type": _str(),
            "title": _str(),
            "status": {"type": "integer"},
            "detail": _str(),
            "instance": _str(),
            "field": _str(),
        },
        "required": ["type", "title", "status", "detail", "instance"],
    },
    "TaskSummary": _obj(
        {"task_id": _str(), "kind": _str(), "upstream": {"type": "array", "items": _str()}}
    ),
    "Dag": _obj(
        {
            "dag_id": _str(),
            "dag_display_name": _str(),
            "root_dag_id": _str(True),
            "is_paused": {"type": "boolean"},
            "is_active": {"type": "boolean"},
            "is_subdag": {"type": "boolean"},
            "last_parsed_time": _ts(),
            "last_pickled": _ts(),
            "last_expired": _ts(),
            "scheduler_lock": {"type": "boolean", "nullable": True},
            "pickle_id": _str(True),
            "default_view": _str(),
            "fileloc": _str(),
            "file_token": _str(),
            "owners": {"type": "array", "items": _str()},
            "description": _str(),
            "schedule_interval": {
                "type": "object",
                "nullable": True,
                "description": "Airflow's ScheduleInterval: CronExpression {value} or TimeDelta "
                "{days, seconds, microseconds}; null for manual runs only",
                "properties": {
                    "__type": {"type": "string", "enum": ["CronExpression", "TimeDelta"]},
                    "value": _str(),
                    "days": {"type": "integer"},
                    "seconds": {"type": "integer"},
                    "microseconds": {"type": "integer"},
                },
                "required": ["__type"],
            },
            "timetable_description": _str(),
            "tags": {"type": "array", "items": _obj({"name": _str()})},
            "max_active_tasks": {"type": "integer"},
            "max_active_runs": {"type": "integer"},
            "has_task_concurrency_limits": {"type": "boolean"},
            "has_import_errors": {"type": "boolean"},
            "next_dagrun": _ts(),
            "next_dagrun_data_interval_start": _ts(),
            "next_dagrun_data_interval_end": _ts(),
            "next_dagrun_create_after": _ts(),
            "schedule": _str(True),
            "timezone": _str(),
            "catchup": {"type": "boolean"},
            "start_date": _ts(),
            "end_date": _ts(),
            "run_states": COUNTS,
            "task_states": COUNTS,
            "tasks": {"type": "array", "items": _ref("TaskSummary")},
        }
    ),
    "DagRun": _obj(
        {
            "dag_run_id": _str(),
            "dag_id": _str(),
            "logical_date": _ts(),
            "execution_date": _ts(),
            "start_date": _ts(),
            "end_date": _ts(),
            "data_interval_start": _ts(),
            "data_interval_end": _ts(),
            "last_scheduling_decision": _ts(),
            "run_type": {"type": "string", "enum": ["backfill", "manual", "scheduled"]},
            "state": {"type": "string", "enum": ["queued", "running", "success", "failed"]},
            "external_trigger": {"type": "boolean"},
            "conf": {"type": "object"},
            "note": _str(True),
            "created_at": _ts(),
            "code_hash": {
                **_str(True),
                "description": "the DAG's code version the run runs (null: made before "
                "versions were kept)",
            },
        }
    ),
    "Attempt": _obj(
        {
            "attempt": {"type": "integer"},
            "state": _str(),
            "epoch": {"type": "integer"},
            "worker": _str(True),
            "queued_at": _ts(),
            "started_at": _ts(),
            "ended_at": _ts(),
            "reason": _str(),
            "result": RESULT,
        }
    ),
    "TaskInstance": _obj(
        {
            "task_id": _str(),
            "task_display_name": _str(),
            "dag_id": _str(),
            "dag_run_id": _str(),
            "execution_date": _ts(),
            "start_date": _ts(),
            "end_date": _ts(),
            "duration": {"type": "number", "nullable": True},
            "state": {"type": "string", "enum": [str(t) for t in TaskState]},
            "try_number": {"type": "integer"},
            "map_index": {"type": "integer"},
            "max_tries": {"type": "integer"},
            "hostname": _str(),
            "unixname": _str(),
            "pool": _str(),
            "pool_slots": {"type": "integer"},
            "queue": _str(True),
            "priority_weight": {"type": "integer", "nullable": True},
            "operator": _str(True),
            "queued_when": _ts(),
            "pid": {"type": "integer", "nullable": True},
            "executor": _str(True),
            "executor_config": _str(),
            "sla_miss": {"type": "object", "nullable": True},
            "rendered_map_index": _str(True),
            "rendered_fields": {"type": "object"},
            "trigger": {"type": "object", "nullable": True},
            "triggerer_job": {"type": "object", "nullable": True},
            "note": _str(True),
            "failures": {"type": "integer"},
        }
    ),
    "Log": _obj(
        {
            "content": _str(),
            "continuation_token": _str(),
            "attempt": {"type": "integer"},
            "cursor": {"type": "integer", "minimum": 0},
            "ended": {"type": "boolean"},
        }
    ),
    "Event": _obj(
        {
            "id": {"type": "integer"},
            "ts": _ts(),
            "kind": _str(),
            "actor": _str(),
            "epoch": {"type": "integer", "nullable": True},
            "dag_id": _str(True),
            "dag_run_id": _str(True),
            "task_id": _str(True),
            "attempt": {"type": "integer", "nullable": True},
            "detail": {"nullable": True},
        }
    ),
    "ImportError": _obj(
        {
            "import_error_id": {"type": "integer"},
            "filename": _str(),
            "stack_trace": _str(),
            "timestamp": _ts(),
            "fileloc": _str(),
            "line": {"type": "integer", "nullable": True},
            "message": _str(),
        }
    ),
    "Cluster": {
        "type": "object",
        "properties": {
            "cluster": _str(),
            "leader": _str(True),
            "epoch": {"type": "integer", "nullable": True},
            "elector_mode": _str(True),
            "election_mode": _str(),
            "schedulers": {"type": "array", "items": {"type": "object"}},
            "workers": {"type": "array", "items": {"type": "object"}},
            "webservers": {"type": "array", "items": {"type": "object"}},
            "zookeeper": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["cluster", "leader", "epoch", "schedulers", "workers", "webservers"],
    },
    "Me": _obj({"username": _str(), "role": _str(), "auth": _str()}),
    "ClearedTaskInstances": _obj(
        {
            "task_instances": {"type": "array", "items": _ref("TaskInstance")},
            "total_entries": {"type": "integer"},
        }
    ),
    "Health": _obj(
        {
            "metadatabase": _obj({"status": {"type": "string", "enum": ["healthy", "unhealthy"]}}),
            "scheduler": {
                **_obj({"status": {"type": "string", "enum": ["healthy", "unhealthy"]}}),
                "description": "latest_scheduler_heartbeat too, for a logged-in asker",
            },
        }
    ),
    "Version": _obj({"version": _str(), "git_version": _str(True)}),
}
SCHEMAS["Pool"] = _obj(
    {
        "name": _str(),
        "slots": {"type": "integer"},
        "occupied_slots": {"type": "integer"},
        "running_slots": {"type": "integer"},
        "queued_slots": {"type": "integer"},
        "open_slots": {"type": "integer"},
        "scheduled_slots": {"type": "integer"},
        "deferred_slots": {"type": "integer"},
        "include_deferred": {"type": "boolean"},
        "description": _str(),
    }
)
SCHEMAS["Backfill"] = _obj(
    {
        "id": {"type": "integer"},
        "dag_id": _str(),
        "from_date": _ts(),
        "to_date": _ts(),
        "intervals": {"type": "integer"},
        "max_active_runs": {"type": "integer"},
        "reset_existing": {"type": "boolean"},
        "state": {"type": "string", "enum": ["running", "done"]},
        "created_by": _str(),
        "created_at": _ts(),
        "completed_at": _ts(),
        "runs_created": {"type": "integer"},
        "succeeded": {"type": "integer"},
        "failed": {"type": "integer"},
        "unfinished": {"type": "integer"},
    }
)
SCHEMAS["BackfillDryRun"] = _obj(
    {
        "dag_id": _str(),
        "intervals": {
            "type": "array",
            "items": _obj({"start": _ts(), "end": _ts()}),
        },
        "total_entries": {"type": "integer"},
    }
)
VERSION_FIELDS: J = {
    "dag_id": _str(),
    "code_hash": _str(),
    "file": _str(),
    "size": {"type": "integer"},
    "created_at": _ts(),
    "runs": {"type": "integer"},
    "current": {"type": "boolean"},
}
SCHEMAS["DagVersion"] = _obj(VERSION_FIELDS)
SCHEMAS["DagVersionCode"] = _obj(
    {
        **VERSION_FIELDS,
        "files": {"type": "array", "items": _str()},
        "path": _str(),
        "content": _str(),
    }
)
SCHEMAS["DagVersionDiff"] = _obj({"dag_id": _str(), "from": _str(), "to": _str(), "diff": _str()})
for _name, _key in (
    ("Dag", "dags"),
    ("DagRun", "dag_runs"),
    ("TaskInstance", "task_instances"),
    ("Event", "events"),
    ("ImportError", "import_errors"),
    ("Pool", "pools"),
    ("Backfill", "backfills"),
    ("DagVersion", "versions"),
):
    SCHEMAS[f"{_name}Collection"] = _collection(_name, _key)
_TIMEDELTA: J = {
    "type": "object",
    "nullable": True,
    "properties": {
        "__type": {"type": "string", "enum": ["TimeDelta"]},
        "days": {"type": "integer"},
        "seconds": {"type": "integer"},
        "microseconds": {"type": "integer"},
    },
    "required": ["__type", "days", "seconds", "microseconds"],
}
SCHEMAS["DagDetail"] = {
    "allOf": [
        _ref("Dag"),
        _obj(
            {
                "concurrency": {"type": "number"},
                "dag_run_timeout": _TIMEDELTA,
                "dataset_expression": {"type": "object", "nullable": True},
                "doc_md": _str(True),
                "is_paused_upon_creation": {"type": "boolean", "nullable": True},
                "last_parsed": _ts(),
                "orientation": _str(),
                "params": {"type": "object"},
                "render_template_as_native_obj": {"type": "boolean"},
                "template_search_path": {"type": "array", "items": _str(), "nullable": True},
            }
        ),
    ]
}
SCHEMAS["Task"] = _obj(
    {
        "class_ref": _obj({"module_path": _str(), "class_name": _str()}),
        "task_id": _str(),
        "task_display_name": _str(),
        "owner": _str(),
        "start_date": _ts(),
        "end_date": _ts(),
        "trigger_rule": {"type": "string", "enum": [str(r) for r in TriggerRule]},
        "extra_links": {"type": "array", "items": {"type": "object"}},
        "depends_on_past": {"type": "boolean"},
        "is_mapped": {"type": "boolean"},
        "wait_for_downstream": {"type": "boolean"},
        "retries": {"type": "number"},
        "queue": _str(True),
        "executor": _str(True),
        "pool": _str(),
        "pool_slots": {"type": "number"},
        "execution_timeout": _TIMEDELTA,
        "retry_delay": _TIMEDELTA,
        "retry_exponential_backoff": {"type": "boolean"},
        "priority_weight": {"type": "number"},
        "weight_rule": {"type": "string", "enum": ["downstream", "upstream", "absolute"]},
        "ui_color": {"type": "string", "pattern": "^#[a-fA-F0-9]{3,6}$"},
        "ui_fgcolor": {"type": "string", "pattern": "^#[a-fA-F0-9]{3,6}$"},
        "template_fields": {"type": "array", "items": _str()},
        "downstream_task_ids": {"type": "array", "items": _str()},
        "doc_md": _str(True),
        "kind": _str(),
        "upstream_task_ids": {"type": "array", "items": _str()},
    }
)
SCHEMAS["TaskCollection"] = _obj(
    {"tasks": {"type": "array", "items": _ref("Task")}, "total_entries": {"type": "integer"}}
)
SCHEMAS["EventLog"] = _obj(
    {
        "event_log_id": {"type": "integer"},
        "when": _ts(),
        "dag_id": _str(True),
        "task_id": _str(True),
        "run_id": _str(True),
        "map_index": {"type": "integer", "nullable": True},
        "try_number": {"type": "integer", "nullable": True},
        "event": _str(),
        "execution_date": _ts(),
        "owner": _str(),
        "extra": _str(True),
    }
)
SCHEMAS["EventLogCollection"] = _collection("EventLog", "event_logs")
SCHEMAS["Config"] = _obj(
    {
        "sections": {
            "type": "array",
            "items": _obj(
                {
                    "name": _str(),
                    "options": {
                        "type": "array",
                        "items": _obj({"key": _str(), "value": _str()}),
                    },
                }
            ),
        }
    }
)
SCHEMAS["TaskInstanceReferenceCollection"] = _obj(
    {
        "task_instances": {
            "type": "array",
            "items": _obj(
                {"task_id": _str(), "dag_id": _str(), "dag_run_id": _str(), "execution_date": _ts()}
            ),
        }
    }
)
_XCOM_ITEM: J = {
    "key": _str(),
    "timestamp": _str(),
    "execution_date": _str(),
    "map_index": {"type": "integer"},
    "task_id": _str(),
    "dag_id": _str(),
}
SCHEMAS["XComItem"] = _obj(_XCOM_ITEM)
SCHEMAS["DagSource"] = _obj({"content": _str()})
SCHEMAS["XComCollection"] = _collection("XComItem", "xcom_entries")
SCHEMAS["XCom"] = _obj(
    {
        **_XCOM_ITEM,
        "value": {
            "description": "the task's result: JSON text, or (stringify=false) the value",
            "nullable": True,
        },
    }
)
SCHEMAS["Variable"] = {
    **_obj({"key": _str(), "value": _str(), "description": _str()}),
    "description": "value is *** when the key looks sensitive (in lists) or for a Viewer",
}
SCHEMAS["Connection"] = {
    **_obj(
        {
            "connection_id": _str(),
            "conn_type": _str(),
            "description": _str(),
            "host": _str(True),
            "login": _str(True),
            "schema": _str(True),
            "port": {"type": "integer", "nullable": True},
            "extra": _str(True),
        }
    ),
    "description": "never the password; extra is JSON text, its sensitive fields ***; "
    "login and extra are null for a Viewer",
}
for _name, _key in (("Variable", "variables"), ("Connection", "connections")):
    SCHEMAS[f"{_name}Collection"] = _obj(
        {
            _key: {"type": "array", "items": _ref(_name)},
            "total_entries": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        }
    )
SCHEMAS["TaskInstanceDetail"] = {
    "allOf": [
        _ref("TaskInstance"),
        _obj({"attempts": {"type": "array", "items": _ref("Attempt")}, "result": RESULT}),
    ]
}


def _param(name: str, where: str, schema: J, required: bool = False) -> J:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


PAGE = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    _param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}),
]
ID = {"type": "string", "minLength": 1, "maxLength": 250}
DAG = [_param("dag_id", "path", ID)]
RUN = [*DAG, _param("dag_run_id", "path", ID)]
TASK = [*RUN, _param("task_id", "path", ID)]
POOL = [_param("pool_name", "path", ID)]
VERSION_NAME: J = {"type": "string", "pattern": "^([0-9a-f]{6,64}|current)$"}
VERSION = [*DAG, _param("version", "path", VERSION_NAME)]
VARIABLE = [_param("variable_key", "path", ID)]
CONNECTION = [_param("connection_id", "path", ID)]
UPDATE_MASK = _param(
    "update_mask", "query", {"type": "array", "items": {"type": "string", "maxLength": 250}}
)


def _errors(*codes: int) -> J:
    every = {401: "not logged in", 403: "the role may not do this", 404: "no such object"}
    every |= {400: "bad input", 409: "conflicts with what exists", 503: "metastore unreachable"}
    every |= {500: "this webserver's [core] fernet_key is missing or cannot decrypt the value"}
    content = {"application/json": {"schema": _ref("Error")}}
    return {str(c): {"description": every[c], "content": content} for c in (401, 503, *codes)}


def _op(op_id: str, summary: str, ok: str, params: list[J], *errors: int, code: int = 200) -> J:
    return {
        "operationId": op_id,
        "summary": summary,
        "parameters": params,
        "responses": {
            str(code): {"description": "OK", "content": {"application/json": {"schema": _ref(ok)}}},
            **_errors(*errors),
        },
    }


def _with_body(op: J, schema: J) -> J:
    return {
        **op,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }


BODY_PATCH = {
    "type": "object",
    "properties": {"is_paused": {"type": "boolean"}},
    "required": ["is_paused"],
    "additionalProperties": False,
}
BODY_TRIGGER = {
    "type": "object",
    "properties": {
        "conf": {"type": "object"},
        "dag_run_id": {"type": "string", "pattern": r"^[A-Za-z0-9_.:+\-]{1,250}$"},
    },
    "additionalProperties": False,
}
_MARKED = {"type": "string", "enum": ["success", "failed"]}
BODY_MARK_RUN = {
    "type": "object",
    "properties": {"state": _MARKED},
    "required": ["state"],
    "additionalProperties": False,
}
BODY_MARK_TI = {
    "type": "object",
    "properties": {"new_state": _MARKED, "dry_run": {"type": "boolean", "default": True}},
    "required": ["new_state"],
    "additionalProperties": False,
}
_SLOTS = {"type": "integer", "minimum": -1, "maximum": 1_000_000}
_NO_DEFERRED = {"type": "boolean", "enum": [False]}
BODY_POOL = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,250}$"},
        "slots": _SLOTS,
        "description": {"type": "string", "maxLength": 10000},
        "include_deferred": _NO_DEFERRED,
    },
    "required": ["name", "slots"],
    "additionalProperties": False,
}
BODY_POOL_PATCH = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_.\-]{1,250}$",
            "description": "the pool's own name (Airflow's clients send it back)",
        },
        "slots": _SLOTS,
        "description": {"type": "string", "maxLength": 10000},
        "include_deferred": _NO_DEFERRED,
    },
    "additionalProperties": False,
}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,250}$"}
_TEXT = {"type": "string", "maxLength": 10000}
BODY_VARIABLE_PATCH = {
    "type": "object",
    "properties": {
        "key": _NAME,
        "value": {"type": "string", "maxLength": 1_000_000},
        "description": _TEXT,
    },
    "additionalProperties": False,
}
BODY_VARIABLE = {**BODY_VARIABLE_PATCH, "required": ["key", "value"]}


def _nullable(schema: J) -> J:
    return {**schema, "nullable": True}


BODY_CONNECTION_PATCH = {
    "type": "object",
    "properties": {
        "connection_id": _NAME,
        "conn_type": {"type": "string", "minLength": 1, "maxLength": 500},
        "description": _TEXT,
        "host": _nullable({"type": "string", "maxLength": 500}),
        "login": _nullable(_TEXT),
        "password": {**_nullable(_TEXT), "writeOnly": True},
        "schema": _nullable({"type": "string", "maxLength": 500}),
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "nullable": True},
        "extra": {
            "type": "string",
            "nullable": True,
            "description": "a JSON object as text (a JSON object is taken too); a sensitive "
            "field sent back as *** keeps its stored value",
        },
    },
    "additionalProperties": False,
}
BODY_CONNECTION = {**BODY_CONNECTION_PATCH, "required": ["connection_id", "conn_type"]}
BODY_BACKFILL = {
    "type": "object",
    "properties": {
        "dag_id": {"type": "string", "minLength": 1, "maxLength": 250},
        "from_date": {"type": "string", "format": "date-time"},
        "to_date": {"type": "string", "format": "date-time"},
        "max_active_runs": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
        "reset_existing": {"type": "boolean", "default": False},
        "dry_run": {"type": "boolean", "default": False},
    },
    "required": ["dag_id", "from_date", "to_date"],
    "additionalProperties": False,
}
BODY_CLEAR = {
    "type": "object",
    "properties": {
        "task_ids": {"type": "array", "items": {"type": "string"}},
        "include_downstream": {"type": "boolean", "default": False},
        "include_upstream": {"type": "boolean", "default": False},
        "only_failed": {"type": "boolean", "default": False},
        "dry_run": {"type": "boolean", "default": True},
    },
    "additionalProperties": False,
}


_ISO = {"type": "string", "format": "date-time"}
BODY_CLEAR_TIS = {
    "type": "object",
    "properties": {
        "dry_run": {"type": "boolean", "default": True},
        "task_ids": {"type": "array", "items": {"type": "string"}},
        "dag_run_id": {"type": "string", "minLength": 1, "maxLength": 250},
        "start_date": _ISO,
        "end_date": _ISO,
        "only_failed": {"type": "boolean", "default": True},
        "include_upstream": {"type": "boolean", "default": False},
        "include_downstream": {"type": "boolean", "default": False},
        "reset_dag_runs": {"type": "boolean", "default": True},
        "only_running": {"type": "boolean", "enum": [False]},
        "include_subdags": {"type": "boolean", "enum": [False]},
        "include_parentdag": {"type": "boolean", "enum": [False]},
        "include_future": {"type": "boolean", "enum": [False]},
        "include_past": {"type": "boolean", "enum": [False]},
    },
    "additionalProperties": False,
}


def _backfill_op() -> J:
    op = _op(
        "create_backfill",
        "Run a DAG's intervals whose start lies from `from_date` to `to_date`; with "
        "`dry_run`, list them only (200)",
        "Backfill",
        [],
        400,
        403,
        404,
        code=201,
    )
    dry = {"application/json": {"schema": _ref("BackfillDryRun")}}
    op["responses"]["200"] = {"description": "the intervals (dry run)", "content": dry}
    return op


def _clear_op() -> J:
    op = _op(
        "clear",
        "Run task instances again; a dry run (listing them) unless `dry_run` is false, which "
        "answers the run",
        "DagRun",
        RUN,
        400,
        403,
        404,
    )
    either = {"oneOf": [_ref("DagRun"), _ref("ClearedTaskInstances")]}
    op["responses"]["200"]["content"]["application/json"]["schema"] = either
    return op


def _public(op_id: str, summary: str, ok: str) -> J:
    """An operation anyone may call (no login)."""
    content = {"application/json": {"schema": _ref(ok)}}
    return {
        "operationId": op_id,
        "summary": summary,
        "security": [],
        "parameters": [],
        "responses": {"200": {"description": "OK", "content": content}},
    }


def _delete_conflicting(op_id: str, summary: str, params: list[J]) -> J:
    """A DELETE that a running object refuses (409)."""
    return {
        "operationId": op_id,
        "summary": summary,
        "parameters": params,
        "responses": {"204": {"description": "deleted"}, **_errors(400, 403, 404, 409)},
    }


def _delete(op_id: str, summary: str, params: list[J]) -> J:
    return {
        "operationId": op_id,
        "summary": summary,
        "parameters": params,
        "responses": {"204": {"description": "deleted"}, **_errors(400, 403, 404)},
    }


def _secret_paths() -> J:
    return {
        "/variables": {
            "get": _op(
                "list_variables",
                "Variables; values *** when the key looks sensitive, and always for a Viewer",
                "VariableCollection",
                PAGE,
                400,
                500,
            ),
            "post": _with_body(
                _op("set_variable", "Create or set a variable", "Variable", [], 400, 403, 500),
                BODY_VARIABLE,
            ),
        },
        "/variables/{variable_key}": {
            "get": _op(
                "get_variable",
                "One variable and its value (not for a Viewer)",
                "Variable",
                VARIABLE,
                400,
                403,
                404,
                500,
            ),
            "patch": _with_body(
                _op(
                    "patch_variable",
                    "Change a variable's value or description (those of `update_mask` only, "
                    "when given)",
                    "Variable",
                    [*VARIABLE, UPDATE_MASK],
                    400,
                    403,
                    404,
                    500,
                ),
                BODY_VARIABLE_PATCH,
            ),
            "delete": _delete("delete_variable", "Delete a variable", VARIABLE),
        },
        "/connections": {
            "get": _op(
                "list_connections",
                "Connections, never their passwords",
                "ConnectionCollection",
                PAGE,
                400,
                500,
            ),
            "post": _with_body(
                _op("add_connection", "Add a connection", "Connection", [], 400, 403, 409, 500),
                BODY_CONNECTION,
            ),
        },
        "/connections/{connection_id}": {
            "get": _op("get_connection", "One connection", "Connection", CONNECTION, 400, 404, 500),
            "patch": _with_body(
                _op(
                    "patch_connection",
                    "Change a connection's fields (a password left out is kept)",
                    "Connection",
                    [*CONNECTION, UPDATE_MASK],
                    400,
                    403,
                    404,
                    500,
                ),
                BODY_CONNECTION_PATCH,
            ),
            "delete": _delete("delete_connection", "Delete a connection", CONNECTION),
        },
    }


def _paths() -> J:
    runs = "/dags/{dag_id}/dagRuns"
    run = runs + "/{dag_run_id}"
    ti = run + "/taskInstances/{task_id}"
    state = _param(
        "state", "query", {"type": "array", "items": {"type": "string", "maxLength": 250}}
    )
    kind = _param("kind", "query", {"type": "string", "maxLength": 250})
    dag_q = _param("dag_id", "query", {"type": "string", "maxLength": 250})
    flag = {"type": "boolean"}
    text = {"type": "string", "maxLength": 250}
    dag_filters = [
        _param("paused", "query", flag),
        _param("only_active", "query", {**flag, "default": True}),
        _param("tags", "query", {"type": "array", "items": text}),
        _param("dag_id_pattern", "query", text),
        _param("order_by", "query", {"type": "string", "enum": ["dag_id", "-dag_id"]}),
    ]
    attempt = _param("attempt", "path", {"type": "integer", "minimum": 1})
    cursor = _param(
        "cursor", "query", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}
    )
    token = _param("token", "query", {"type": "string", "pattern": "^[0-9]{1,18}$"})
    full = _param("full_content", "query", {**flag, "default": False})
    map_index = _param("map_index", "query", {"type": "integer", "minimum": -1, "maximum": -1})

    def order_by(*fields: str) -> J:
        choices = [f for field in fields for f in (field, f"-{field}")]
        return _param("order_by", "query", {"type": "string", "enum": choices})

    return {
        "/health": {"get": _public("api_health", "Airflow's health: always 200", "Health")},
        "/version": {"get": _public("version", "haflow's version", "Version")},
        "/dags": {
            "get": _op("list_dags", "DAGs", "DagCollection", [*PAGE, *dag_filters], 400),
            "patch": _with_body(
                _op(
                    "patch_dags",
                    "Pause or unpause every DAG whose id holds `dag_id_pattern`",
                    "DagCollection",
                    [
                        _param("dag_id_pattern", "query", {**text, "minLength": 1}, True),
                        UPDATE_MASK,
                    ],
                    400,
                    403,
                ),
                BODY_PATCH,
            ),
        },
        "/dags/{dag_id}": {
            "get": _op("get_dag", "One DAG", "Dag", DAG, 400, 404),
            "delete": _delete_conflicting(
                "delete_dag",
                "Delete the DAG's runs, task instances and versions (not while a run is queued "
                "or running); its file, if still there, brings it back",
                DAG,
            ),
            "patch": _with_body(
                _op("patch_dag", "Pause or unpause", "Dag", [*DAG, UPDATE_MASK], 400, 403, 404),
                BODY_PATCH,
            ),
        },
        "/dags/{dag_id}/details": {
            "get": _op("dag_details", "One DAG with Airflow's details", "DagDetail", DAG, 400, 404)
        },
        "/dags/{dag_id}/tasks": {
            "get": _op("dag_tasks", "The DAG's tasks", "TaskCollection", DAG, 400, 404)
        },
        "/dags/{dag_id}/tasks/{task_id}": {
            "get": _op(
                "dag_task",
                "One task of the DAG",
                "Task",
                [*DAG, _param("task_id", "path", ID)],
                400,
                404,
            )
        },
        "/dags/{dag_id}/clearTaskInstances": {
            "post": _with_body(
                _op(
                    "clear_task_instances",
                    "Run task instances of the DAG's runs again (a dry run unless `dry_run` is "
                    "false; `only_failed` by default)",
                    "TaskInstanceReferenceCollection",
                    DAG,
                    400,
                    403,
                    404,
                ),
                BODY_CLEAR_TIS,
            )
        },
        runs: {
            "get": _op(
                "list_runs",
                "Runs of a DAG (`~`: of every DAG), newest first",
                "DagRunCollection",
                [*DAG, *PAGE, state, order_by(*RUN_ORDERS)],
                400,
                404,
            ),
            "post": _with_body(
                _op("trigger", "Trigger a run", "DagRun", DAG, 400, 403, 404, 409, code=201),
                BODY_TRIGGER,
            ),
        },
        run: {
            "get": _op("get_run", "One run", "DagRun", RUN, 400, 404),
            "delete": _delete_conflicting(
                "delete_run", "Delete a finished run with its task instances", RUN
            ),
            "patch": _with_body(
                _op("mark_run", "Mark a run success or failed", "DagRun", RUN, 400, 403, 404),
                BODY_MARK_RUN,
            ),
        },
        run + "/clear": {"post": _with_body(_clear_op(), BODY_CLEAR)},
        run + "/taskInstances": {
            "get": _op(
                "list_tis",
                "Task instances of a run",
                "TaskInstanceCollection",
                [*RUN, *PAGE, order_by(*TI_ORDERS)],
                400,
                404,
            )
        },
        ti: {
            "get": _op(
                "get_ti", "A task instance and its attempts", "TaskInstanceDetail", TASK, 400, 404
            ),
            "patch": _with_body(
                _op(
                    "mark_ti",
                    "Mark a task instance success or failed (a dry run unless `dry_run` is "
                    "false, as in Airflow)",
                    "TaskInstanceDetail",
                    TASK,
                    400,
                    403,
                    404,
                ),
                BODY_MARK_TI,
            ),
        },
        ti + "/xcomEntries": {
            "get": _op(
                "xcom_entries",
                "Airflow's XCom entries of a task instance: its result as return_value",
                "XComCollection",
                [*TASK, *PAGE, map_index, _param("xcom_key", "query", text)],
                400,
                404,
            )
        },
        ti + "/xcomEntries/{xcom_key}": {
            "get": _op(
                "xcom_entry",
                "The task's result as Airflow's XCom return_value",
                "XCom",
                [
                    *TASK,
                    _param("xcom_key", "path", ID),
                    map_index,
                    _param("deserialize", "query", flag),
                    _param("stringify", "query", {**flag, "default": True}),
                ],
                400,
                404,
            )
        },
        ti + "/logs/{attempt}": {
            "get": _op(
                "get_log",
                "The log of one attempt written after `cursor` or `token` (0: all of it); "
                "pass the answer's `cursor` (or `continuation_token`) to get only what is new, "
                "until `ended`",
                "Log",
                [*TASK, attempt, cursor, token, full],
                400,
                404,
            )
        },
        "/cluster": {
            "get": _op("cluster", "Schedulers, workers, webservers, ZooKeeper", "Cluster", [])
        },
        "/backfills": {
            "get": _op(
                "list_backfills",
                "Backfills, newest first",
                "BackfillCollection",
                [*PAGE, dag_q],
                400,
            ),
            "post": _with_body(_backfill_op(), BODY_BACKFILL),
        },
        "/backfills/{backfill_id}": {
            "get": _op(
                "get_backfill",
                "A backfill and its progress",
                "Backfill",
                [
                    _param(
                        "backfill_id", "path", {"type": "integer", "minimum": 1, "maximum": 2**62}
                    )
                ],
                400,
                404,
            )
        },
        "/pools": {
            "get": _op(
                "list_pools",
                "Pools and the slots in use",
                "PoolCollection",
                [*PAGE, order_by(*POOL_ORDERS)],
                400,
            ),
            "post": _with_body(
                _op("create_pool", "Create a pool", "Pool", [], 400, 403, 409, code=201),
                BODY_POOL,
            ),
        },
        "/pools/{pool_name}": {
            "get": _op("get_pool", "One pool", "Pool", POOL, 400, 404),
            "patch": _with_body(
                _op(
                    "patch_pool",
                    "Change a pool's slots or description (those of `update_mask`, if given)",
                    "Pool",
                    [*POOL, UPDATE_MASK],
                    400,
                    403,
                    404,
                ),
                BODY_POOL_PATCH,
            ),
            "delete": {
                "operationId": "delete_pool",
                "summary": "Delete a pool (not while unfinished runs use it)",
                "parameters": POOL,
                "responses": {"204": {"description": "deleted"}, **_errors(400, 403, 404, 409)},
            },
        },
        **_secret_paths(),
        "/events": {
            "get": _op(
                "events",
                "The event log, newest first",
                "EventCollection",
                [*PAGE, kind, dag_q, order_by(*EVENT_ORDERS)],
                400,
            )
        },
        "/eventLogs": {
            "get": _op(
                "event_logs",
                "The event log in Airflow's shape, newest first",
                "EventLogCollection",
                [*PAGE, _param("event", "query", text), dag_q, order_by(*EVENT_ORDERS)],
                400,
            )
        },
        "/eventLogs/{event_log_id}": {
            "get": _op(
                "event_log",
                "One event",
                "EventLog",
                [
                    _param(
                        "event_log_id", "path", {"type": "integer", "minimum": 1, "maximum": 2**62}
                    )
                ],
                400,
                404,
            )
        },
        "/config": {
            "get": _op(
                "config",
                "The configuration, secrets masked (Admins only)",
                "Config",
                [_param("section", "query", text)],
                400,
                403,
                404,
            )
        },
        "/dagSources/{file_token}": {
            "get": _op(
                "dag_source",
                "The DAG file of a DAG's code version now (`file_token`: the DAG's)",
                "DagSource",
                [_param("file_token", "path", ID)],
                400,
                404,
            )
        },
        "/dags/{dag_id}/versions": {
            "get": _op(
                "list_versions",
                "The DAG's code versions, newest first",
                "DagVersionCollection",
                [*DAG, *PAGE],
                400,
                404,
            )
        },
        "/dags/{dag_id}/versions/{version}/code": {
            "get": _op(
                "version_code",
                "A file of a code version (the DAG file unless `file` names a helper module)",
                "DagVersionCode",
                [*VERSION, _param("file", "query", {"type": "string", "maxLength": 250})],
                400,
                404,
            )
        },
        "/dags/{dag_id}/versions/{version}/diff": {
            "get": _op(
                "version_diff",
                "What changed from a version to another (default: the DAG's version now)",
                "DagVersionDiff",
                [*VERSION, _param("to", "query", VERSION_NAME)],
                400,
                404,
            )
        },
        "/importErrors": {
            "get": _op(
                "import_errors",
                "DAG files that failed to load",
                "ImportErrorCollection",
                [*PAGE, order_by(*IMPORT_ERROR_ORDERS)],
                400,
            )
        },
        "/me": {"get": _op("me", "Who is asking", "Me", [])},
    }


@cache
def document() -> J:
    return {
        "openapi": "3.0.3",
        "info": {"title": "haflow REST API", "version": __version__},
        "servers": [{"url": "/api/v1"}],
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": _paths(),
    }


@cache
def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(path as the document writes it, lower-case method) -> the query parameters declared."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            out[(path, method)] = frozenset(names)
    return out


def documented_path(rule: str) -> str:
    """A Flask rule of /api/v1 (`/api/v1/dags/<dag_id>/logs/<int:attempt>`) as the document
    writes its path (`/dags/{dag_id}/logs/{attempt}`)."""
    path = rule.removeprefix("/api/v1")
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", path)
