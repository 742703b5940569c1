"""`dags test` / `tasks test`: run tasks here and now, printing their output, recording nothing."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haflow.core.rules import Verdict, evaluate_trigger
from haflow.core.states import TaskState
from haflow.dag.dag import DAG
from haflow.dag.sensors import BaseSensor
from haflow.dag.tasks import BaseTask, BashTask, PythonTask
from haflow.errors import HaflowError, InvalidRequest
from haflow.metastore.records import ClaimedAttempt
from haflow.worker.child import context_env, run_task
from haflow.worker.files import AttemptFiles, ResultRefused, collect, prepare
from haflow.worker.process import LogSink, Outcome, Result, spawn_python, supervise
from haflow.worker.secrets import SecretServer, SecretSource
from haflow.worker.sensing import SensorFailed, judge, read_poke
from haflow.worker.taskenv import become_task

Printer = Callable[[str], None]


def test_task(
    task: BaseTask,
    conf: Mapping[str, Any],
    echo: Printer,
    allow: Sequence[str],
    results: dict[str, str] | None = None,
    max_result_bytes: int = 65536,
    secrets: SecretSource | None = None,
) -> Outcome:
    """Run one task here, now, as a worker would: the environment is built from the same
    allow-list (`allow`, `[worker] task_env_allowlist`), for bash and Python tasks alike. It
    reads its ancestors' results from `results` (task id -> JSON text), where its own is
    added when it succeeds with one, and variables and connections from `secrets` (masked
    in what it prints, as on a worker)."""
    results = {} if results is None else results
    with tempfile.TemporaryDirectory(prefix="haflow-test-") as base:
        files = prepare(Path(base), 0, 1, results)
        server = SecretServer(Path(base), secrets) if secrets is not None else None
        try:
            outcome, value = _run(task, conf, echo, allow, files, max_result_bytes, server)
        finally:
            if server is not None:
                server.close()
    if value is not None:
        results[task.task_id] = value
        echo(f"[{task.task_id}] result: {value[:2000]}")
    return outcome


def _run(
    task: BaseTask,
    conf: Mapping[str, Any],
    echo: Printer,
    allow: Sequence[str],
    files: AttemptFiles,
    max_result_bytes: int,
    server: SecretServer | None,
) -> tuple[Outcome, str | None]:
    now = datetime.now(UTC)
    claimed = ClaimedAttempt(
        0,
        1,
        task.dag.dag_id,
        f"test__{now.isoformat()}",
        task.task_id,
        str(task.dag.fileloc),
        _timeout(task),
        dict(conf),
    )
    context = context_env(claimed, files=files)
    if not isinstance(task, BashTask | PythonTask | BaseSensor):
        raise HaflowError(f"task {task.task_id!r} has unsupported kind {type(task).__name__}")
    sink = LogSink(1 << 30)
    if server is not None:
        server.admit(files.folder, sink)  # before it starts: it may ask at once
    pid, fd = spawn_python(lambda: run_task(task, claimed, become_task(allow, context), files))

    def flush() -> bool:
        text = sink.take()
        if text:
            echo(text.rstrip("\n"))
        return True

    result = supervise(pid, fd, sink, timeout_s=claimed.timeout_s, tick_every_s=0.2, on_tick=flush)
    result, value = _ending(result, claimed, files, now, echo, max_result_bytes)
    flush()
    echo(f"[{task.task_id}] {result.outcome.value} {result.reason}".rstrip())
    return result.outcome, value


def _ending(
    result: Result,
    claimed: ClaimedAttempt,
    files: AttemptFiles,
    now: datetime,
    echo: Printer,
    max_result_bytes: int,
) -> tuple[Result, str | None]:
    """How the test ended: a sensor poked once (judged now), or a task and its result."""
    value = None
    poke = read_poke(files) if result.outcome is Outcome.SUCCESS else None
    if poke is not None:  # a sensor is poked once here
        try:
            if not judge(poke, claimed, now, now, None, echo):
                result = Result(Outcome.FAILED, "not yet: its condition does not hold now", 0)
        except SensorFailed as exc:
            result = Result(Outcome.FAILED, str(exc), 0)
    elif result.outcome is Outcome.SUCCESS:
        try:
            value = collect(files, max_result_bytes)
        except ResultRefused as exc:
            result = Result(Outcome.FAILED, str(exc), result.exit_code)
    return result, value


def test_dag(
    dag: DAG,
    conf: Mapping[str, Any],
    echo: Printer,
    allow: Sequence[str],
    max_result_bytes: int = 65536,
    secrets: SecretSource | None = None,
) -> dict[str, TaskState]:
    """Run every task once in dependency order, honouring trigger rules, passing results;
    no retries."""
    states: dict[str, TaskState] = {}
    results: dict[str, str] = {}
    for tid in dag.topological_order():
        task = dag.tasks[tid]
        verdict = evaluate_trigger(task.trigger_rule, [states[u] for u in task.upstream_task_ids])
        if verdict is Verdict.READY:
            echo(f"--- {tid} ---")
            outcome = test_task(task, conf, echo, allow, results, max_result_bytes, secrets)
            ok = outcome is Outcome.SUCCESS
            states[tid] = TaskState.SUCCESS if ok else TaskState.FAILED
        else:
            states[tid] = (
                TaskState.SKIPPED if verdict is Verdict.SKIP else TaskState.UPSTREAM_FAILED
            )
            echo(f"--- {tid}: {states[tid].value} ---")
    return states


def _timeout(task: BaseTask) -> float | None:
    return None if task.execution_timeout is None else task.execution_timeout.total_seconds()


def parse_conf(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"--conf is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest('--conf must be a JSON object, e.g. \'{"key": "value"}\'')
    return value
