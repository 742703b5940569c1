"""What DAG authors write, as Airflow users write it: `from haflow import ...`, `@dag`."""

from __future__ import annotations

from pathlib import Path

import pytest

import haflow
from haflow.dag.loader import load_dag_file


def test_the_authoring_names_import_from_haflow_itself() -> None:
    from haflow import DAG, BashTask, PythonTask, dag, task

    assert DAG.__module__ == "haflow.dag.dag" and callable(dag) and callable(task)
    assert BashTask.kind == "bash" and PythonTask.kind == "python"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = haflow.nope


def test_a_dag_decorated_function_becomes_a_dag_when_called(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        """
from datetime import datetime
from haflow import dag, task, BashTask

@dag(schedule="@daily", start_date=datetime(2026, 1, 1), tags=["tf"])
def nightly():
    \"\"\"Loads the warehouse every night.\"\"\"
    @task
    def extract():
        return 1

    extract() >> BashTask("load", bash_command="echo load")

nightly()

@dag(dag_id="renamed")
def other():
    BashTask("only", bash_command="true")

other()
"""
    )
    dags, error = load_dag_file(path)
    assert error is None
    by_id = {d.dag_id: d for d in dags}
    nightly = by_id["nightly"]
    assert nightly.description == "Loads the warehouse every night."
    assert nightly.fileloc == str(path) and nightly.tags == ["tf"]
    assert nightly.tasks["load"].upstream_task_ids == {"extract"}
    assert list(by_id["renamed"].tasks) == ["only"]


def test_retry_backoff_comes_from_the_task_or_default_args() -> None:
    from datetime import timedelta

    from haflow import DAG, BashTask
    from haflow.errors import DagDefinitionError

    with DAG("b", default_args={"retry_exponential_backoff": True}) as d:
        capped = BashTask("capped", bash_command="true", max_retry_delay=60)
        default = BashTask("default", bash_command="true")
        fixed = BashTask("fixed", bash_command="true", retry_exponential_backoff=False)
    assert capped.retry_backoff_cap == timedelta(seconds=60)
    assert default.retry_backoff_cap == timedelta(days=1)
    assert fixed.retry_backoff_cap is None
    assert d.structure()["tasks"]["capped"]["retry_backoff_cap"] == 60.0
    with pytest.raises(DagDefinitionError, match="retry_exponential_backoff must be True"):
        BashTask("bad", bash_command="true", dag=d, retry_exponential_backoff="yes")


def test_once_and_interval_schedules_create_their_runs() -> None:
    from datetime import UTC, datetime, timedelta

    from haflow import DAG
    from haflow.core.planner import DagSpec, due_runs

    start = datetime(2026, 1, 1, tzinfo=UTC)
    every = DAG("every", schedule=timedelta(hours=12), start_date=start, catchup=True)
    once = DAG("once", schedule="@once", start_date=start)
    assert every.schedule == "@every 43200s" and every.structure()["schedule"] == "@every 43200s"
    now = start + timedelta(days=1, hours=1)

    def spec(d: DAG, last: datetime | None) -> DagSpec:
        return DagSpec(d.dag_id, {}, d.schedule_obj, d.start_date, d.catchup, 16, False, last)

    runs = due_runs(spec(every, None), now)
    assert [(r.interval_start, r.interval_end) for r in runs] == [
        (start, start + timedelta(hours=12)),
        (start + timedelta(hours=12), start + timedelta(days=1)),
    ]
    (first,) = due_runs(spec(once, None), now)
    assert first.fire_at == start == first.interval_end
    assert due_runs(spec(once, start), now) == []  # once
