"""What runs in an attempt's own process: the task's environment, its DAG file's task, the call.

Kept apart from the runner so that a warm process (`haflow.worker.warm`) imports only this and
the DAG modules, not the worker's metastore and broker libraries: every attempt's fork copies
the warm process's memory.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from haflow.core.params import resolve
from haflow.core.secrets import CONN_ENV_PREFIX, VAR_ENV_PREFIX, env_name
from haflow.dag.dag import DAG
from haflow.dag.loader import ImportErrorRecord, importable, load_dag_file
from haflow.dag.results import TaskContext, ancestors, upstream_results
from haflow.dag.results import resolve as resolve_refs
from haflow.dag.secrets import Connection, Variable
from haflow.dag.sensors import BaseSensor
from haflow.dag.tasks import BaseTask, BashTask, PythonTask
from haflow.errors import HaflowError
from haflow.metastore.records import ClaimedAttempt
from haflow.worker.code import CodeLocation
from haflow.worker.files import AttemptFiles
from haflow.worker.taskenv import become_task


def run_from_file(
    c: ClaimedAttempt,
    where: CodeLocation,
    worker_id: str,
    allow: Sequence[str],
    files: AttemptFiles,
) -> object:
    """The attempt's child: trade the worker's environment for the task's (the `allow`ed
    variables and haflow's context; `haflow.worker.taskenv`), import the DAG's own file (its
    run's code version), then run the task (bash replaces this process). A file that cannot
    be loaded fails the attempt with the reason in its log."""
    env = become_task(allow, context_env(c, worker_id, os.getppid(), files))
    return run_task(load_task(c, where), c, env, files)


def run_task(
    task: BaseTask, c: ClaimedAttempt, env: Mapping[str, str], files: AttemptFiles
) -> object:
    """Run `task` in this (the attempt's own) process: bash replaces it (and writes its result
    to $HAFLOW_RESULT_FILE itself), Python is called and what it returns is its result."""
    run_results = files.read_upstream()  # most runs have none: then no file, no parse
    results = upstream_results(task, run_results) if run_results else {}
    if isinstance(task, BashTask):
        files.write_upstream(results)  # its ancestors' alone, as a Python task sees them
        sys.stdout.flush()
        params = {"HAFLOW_PARAMS": json.dumps(resolve(task.dag.params, c.conf))}
        given = {**env, **params, **bash_secrets(task), **(task.env or {})}
        os.execvpe("bash", ["bash", "-c", task.bash_command], given)
    if isinstance(task, PythonTask):
        value = python_call(task, c, results)()
        files.write_result(task.task_id, value)
        return value
    if isinstance(task, BaseSensor):
        answer = task.poke(task_context(task, c, results))
        files.write_poke(answer, task.sensing())
        return None
    _cannot_load(f"task {c.task_id!r} has unsupported kind {type(task).__name__}")


def bash_secrets(task: BashTask) -> dict[str, str]:
    """The variables and connections a bash task names, as its environment variables; one
    that cannot be read fails the attempt, saying why."""
    out = {}
    try:
        for key in task.variables:
            out[env_name(VAR_ENV_PREFIX, key)] = Variable.get(key)
        for conn_id in task.connections:
            out[env_name(CONN_ENV_PREFIX, conn_id)] = Connection.get(conn_id).get_uri()
    except (KeyError, HaflowError) as exc:
        _cannot_load(f"task {task.task_id!r}: {exc.args[0] if exc.args else exc}")
    return out


def load_task(c: ClaimedAttempt, where: CodeLocation) -> BaseTask:
    """Task `c.task_id` of DAG `c.dag_id`, from its run's code (`haflow.worker.code`)."""
    importable(where.root, first=where.versioned)
    dags, error = load_dag_file(where.path, as_path=where.as_path)
    return pick_task(dags, error, c, where.as_path or where.path)


def pick_task(
    dags: Sequence[DAG], error: ImportErrorRecord | None, c: ClaimedAttempt, path: str
) -> BaseTask:
    """The task `c` names among the DAGs loaded from `path`; a load error, or a DAG or task
    that is gone, fails the attempt with the reason in its log."""
    if error is not None:
        where = f", line {error.line}" if error.line else ""
        _cannot_load(f"cannot load DAG file {path}{where}: {error.message}")
    dag = next((d for d in dags if d.dag_id == c.dag_id), None)
    if dag is None:
        _cannot_load(f"DAG {c.dag_id!r} is no longer defined in {path}")
    if c.task_id not in dag.tasks:
        _cannot_load(f"DAG {c.dag_id!r} in {path} has no task {c.task_id!r} any more")
    return dag.tasks[c.task_id]


def _cannot_load(message: str) -> NoReturn:
    print(f"[haflow: {message}]", file=sys.stderr)
    raise SystemExit(1)


def context_env(
    c: ClaimedAttempt, worker_id: str = "", worker_pid: int = 0, files: AttemptFiles | None = None
) -> dict[str, str]:
    """haflow's variables in an attempt's environment; HAFLOW_WORKER_PID is the process that
    claimed the attempt (a pool process of the local executor, a Celery pool process);
    HAFLOW_CODE_HASH the code version it runs ("" for a run made before versions were kept);
    HAFLOW_RESULT_FILE and HAFLOW_UPSTREAM_RESULTS are `files`' (`haflow.worker.files`)."""
    return {
        **(files.env() if files is not None else {}),
        "HAFLOW_WORKER_ID": worker_id,
        "HAFLOW_WORKER_PID": str(worker_pid or ""),
        "HAFLOW_DAG_ID": c.dag_id,
        "HAFLOW_RUN_ID": c.run_id,
        "HAFLOW_TASK_ID": c.task_id,
        "HAFLOW_ATTEMPT": str(c.attempt),
        "HAFLOW_CODE_HASH": c.code_hash or "",
        "HAFLOW_CONF": json.dumps(c.conf),
        "HAFLOW_DATA_INTERVAL_START": _iso(c.data_interval_start),
        "HAFLOW_DATA_INTERVAL_END": _iso(c.data_interval_end),
    }


def _iso(value: Any) -> str:
    return "" if value is None else value.isoformat()


def python_call(
    task: PythonTask, c: ClaimedAttempt, results: Mapping[str, Any]
) -> Callable[[], object]:
    """The task's call: its arguments with each upstream result in place of its reference
    (`haflow.dag.results`), and `context` and `ti` for a callable that names them."""
    kwargs = resolve_refs(dict(task.op_kwargs or {}), results)
    assert isinstance(kwargs, dict)
    wanted = inspect.signature(task.python_callable).parameters
    if "context" in wanted or "ti" in wanted:  # built only for a callable that asks
        context = task_context(task, c, results)
        if "context" in wanted:
            kwargs["context"] = context
        if "ti" in wanted and "ti" not in kwargs:
            kwargs["ti"] = context["ti"]
    fn = task.python_callable
    return lambda: fn(**kwargs)


def task_context(task: BaseTask, c: ClaimedAttempt, results: Mapping[str, Any]) -> dict[str, Any]:
    """What a Python task's `context` (and a sensor's poke) sees of its attempt."""
    ti = TaskContext(c.dag_id, c.run_id, c.task_id, c.attempt, ancestors(task), results)
    return {
        **context_env(c),
        "conf": c.conf,
        "attempt": c.attempt,
        "params": resolve(task.dag.params, c.conf),
        "data_interval_start": c.data_interval_start,
        "data_interval_end": c.data_interval_end,
        "ti": ti,
    }
