"""Results passed between tasks, through the real scheduler, local executor and metastore: a
TaskFlow chain, a bash task's result file, the cap, and a reclaimed attempt whose result is
never the one read."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from haflow.core.clock import utcnow
from haflow.metastore.records import result_of
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=60.0)

DAG_FILE = r"""
from datetime import datetime
from haflow import DAG, BashTask, task

@task
def extract():
    return {"rows": [1, 2, 3]}

@task
def transform(data, context):
    return {"total": sum(data["rows"]), "attempt": context["attempt"]}

@task
def load(summary, ti):
    print("loaded", summary["total"], "from", ti.pull("extract")["rows"])
    print("bash said", ti.pull("from_bash"))

with DAG("it_results", start_date=datetime(2026, 1, 1)):
    rows = extract()
    from_bash = BashTask(
        "from_bash",
        bash_command='echo "upstream: $(cat "$HAFLOW_UPSTREAM_RESULTS")"; '
        'echo "{\\"n\\": $HAFLOW_ATTEMPT}" > "$HAFLOW_RESULT_FILE"',
    )
    rows >> from_bash
    from_bash >> load(summary=transform(rows))

@task
def too_big():
    return "x" * 100

with DAG("it_bad_results", start_date=datetime(2026, 1, 1)):
    too_big()
    BashTask("not_json", bash_command='echo hello > "$HAFLOW_RESULT_FILE"')

@task
def read(value):
    print("read", value)
    return value

with DAG("it_reclaimed", start_date=datetime(2026, 1, 1)):
    # attempt 1 writes its result, then its worker dies before it can report: the attempt is
    # lost and reclaimed; attempt 2's result is the one `read` gets
    first = BashTask(
        "first",
        bash_command='echo "\\"from attempt $HAFLOW_ATTEMPT\\"" > "$HAFLOW_RESULT_FILE"; '
        'if [ "$HAFLOW_ATTEMPT" = 1 ]; then kill -9 "$HAFLOW_WORKER_PID"; sleep 30; fi',
    )
    read(value=first)
"""


def test_results_pass_between_tasks_and_a_reclaimed_attempts_result_is_never_read(
    tmp_path: Path, db_url: str
) -> None:
    with scheduler_thread(
        tmp_path,
        db_url,
        {"it_results.py": DAG_FILE},
        HAFLOW__CORE__PARALLELISM="3",
        HAFLOW__CORE__ATTEMPTS_PER_PROCESS="1",
        # a heartbeat window of 5 s, as test_sensors' (1.5 s was missed under a loaded CI)
        HAFLOW__WORKER__HEARTBEAT_SEC="0.5",
        HAFLOW__WORKER__TIMEOUT="6",
        HAFLOW__WORKER__SELF_FENCE_MARGIN="1",
        HAFLOW__WORKER__MAX_RESULT_BYTES="64",
    ) as service:
        repo = service.repo
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == 3)
        for dag_id in ("it_results", "it_bad_results", "it_reclaimed"):
            repo.runs.trigger(dag_id, {}, utcnow(), run_id="r1")
        for dag_id in ("it_results", "it_bad_results", "it_reclaimed"):
            wait_for(
                f"{dag_id} r1 to finish", functools.partial(_finished, repo, dag_id), timeout=60
            )
        seen = {d: _seen(repo, d) for d in ("it_results", "it_bad_results", "it_reclaimed")}
        env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
        shown = subprocess.run(
            [*HAFLOW, "tasks", "result", "it_results", "r1", "transform"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        none = subprocess.run(
            [*HAFLOW, "tasks", "result", "it_results", "r1", "load"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    results = seen["it_results"]
    assert results["state"] == "success"
    assert results["results"] == {
        "extract": {"rows": [1, 2, 3]},
        "from_bash": {"n": 1},
        "transform": {"total": 6, "attempt": 1},
        "load": None,
    }
    assert 'upstream: {"extract": {"rows": [1, 2, 3]}}' in results["logs"]["from_bash"]
    assert "loaded 6 from [1, 2, 3]" in results["logs"]["load"]
    assert "bash said {'n': 1}" in results["logs"]["load"]
    assert shown.returncode == 0 and json.loads(shown.stdout) == {"total": 6, "attempt": 1}
    assert none.returncode == 1 and "has no result" in none.stderr

    bad = seen["it_bad_results"]
    assert bad["states"] == {"too_big": "failed", "not_json": "failed"}
    assert "102 bytes is over [worker] max_result_bytes = 64" in bad["reasons"]["too_big"]
    assert "does not hold JSON" in bad["reasons"]["not_json"]
    assert "does not hold JSON" in bad["logs"]["not_json"]

    reclaimed = seen["it_reclaimed"]
    assert reclaimed["state"] == "success"
    assert reclaimed["attempts"]["first"] == [("lost", None), ("success", '"from attempt 2"')]
    assert reclaimed["results"]["read"] == "from attempt 2"
    assert "read from attempt 2" in reclaimed["logs"]["read"]


def _finished(repo: Repository, dag_id: str) -> bool:
    try:
        return repo.runs.get(dag_id, "r1").state in ("success", "failed")
    except Exception:
        return False


def _seen(repo: Repository, dag_id: str) -> dict[str, Any]:
    """What a run left in the metastore: states, results, each task's attempts (state and
    result), the last attempt's reason and log."""
    out: dict[str, dict[str, Any]] = {
        "states": {}, "results": {}, "attempts": {}, "reasons": {}, "logs": {},
    }  # fmt: skip
    for ti in repo.history.task_instances(dag_id, "r1"):
        attempts = repo.history.attempts(ti.id)
        text = result_of(ti, attempts)
        out["states"][ti.task_id] = ti.state
        out["results"][ti.task_id] = None if text is None else json.loads(text)
        out["attempts"][ti.task_id] = [(a.state, a.result) for a in attempts]
        out["reasons"][ti.task_id] = attempts[-1].reason if attempts else ""
        out["logs"][ti.task_id] = repo.history.logs(ti.id, ti.attempt) if ti.attempt else ""
    return {**out, "state": repo.runs.get(dag_id, "r1").state}
