"""Results between tasks: the edges `t2(x=t1())` makes, what a task may pull, and the files
through which an attempt's child hands its result to the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from haflow.dag import DAG, BashTask, PythonTask, task
from haflow.dag.results import ResultRef, TaskContext, ancestors, resolve, upstream_results
from haflow.errors import DagDefinitionError
from haflow.worker.files import AttemptFiles, ResultRefused, collect, prepare


@task
def extract() -> dict[str, int]:
    return {"rows": 3}


@task
def transform(data: dict[str, int], factor: int = 2) -> int:
    return data["rows"] * factor


@task
def load(total: int, parts: list[object]) -> None:
    return None


def test_passing_a_task_makes_the_edge_and_a_reference_not_the_task_object() -> None:
    with DAG("flow", fileloc="/dags/flow.py") as dag:
        t1 = extract()
        t2 = transform(t1)
        t3 = load(total=t2, parts=[t1, {"again": t2.output}])
    assert t2.upstream_task_ids == {"extract"}
    assert t3.upstream_task_ids == {"extract", "transform"}
    assert t2.op_kwargs == {"data": ResultRef("extract")}
    assert t3.op_kwargs == {
        "total": ResultRef("transform"),
        "parts": [ResultRef("extract"), {"again": ResultRef("transform")}],
    }
    assert ancestors(dag.tasks["load"]) == {"extract", "transform"}
    assert resolve(t3.op_kwargs, {"extract": {"rows": 3}, "transform": 6}) == {
        "total": 6,
        "parts": [{"rows": 3}, {"again": 6}],
    }


def test_a_plain_python_task_given_a_task_in_op_kwargs_gets_the_edge_too() -> None:
    with DAG("plain", fileloc="/dags/plain.py"):
        first = BashTask("first", "echo 1 > $HAFLOW_RESULT_FILE")
        second = PythonTask("second", print, op_kwargs={"x": first})
    assert second.upstream_task_ids == {"first"}
    assert second.op_kwargs == {"x": ResultRef("first")}


def test_a_task_of_another_dag_cannot_be_passed() -> None:
    with DAG("one", fileloc="/dags/one.py"):
        t1 = extract()
    with DAG("two", fileloc="/dags/two.py"), pytest.raises(DagDefinitionError, match="different"):
        transform(data=t1)


def test_pull_reads_ancestors_only_and_names_the_task_it_refuses() -> None:
    with DAG("flow", fileloc="/dags/flow.py") as dag:
        t1 = extract()
        t2 = transform(data=t1)
        other = BashTask("other", "true")
    results = upstream_results(t2, {"extract": {"rows": 3}, "other": "no"})
    assert results == {"extract": {"rows": 3}}
    ti = TaskContext("flow", "r1", "transform", 1, ancestors(t2), results)
    assert ti.pull("extract") == {"rows": 3}
    assert ti.xcom_pull(task_ids="extract") == {"rows": 3}
    assert ti.xcom_pull(task_ids=["extract"]) == [{"rows": 3}]
    with pytest.raises(ValueError, match="'other'"):
        ti.pull(other.task_id)
    with pytest.raises(ValueError, match="key"):
        ti.xcom_pull("extract", key="mine")
    assert dag.tasks["other"].upstream_task_ids == set()


def test_the_run_results_reach_the_child_and_its_result_comes_back(tmp_path: Path) -> None:
    files = prepare(tmp_path, 7, 2, {"a": '{"x": [1, 2]}', "b": '"text"'})
    assert files.read_upstream() == {"a": {"x": [1, 2]}, "b": "text"}
    assert oct(Path(files.folder).stat().st_mode & 0o777) == "0o700"
    assert collect(files, 100) is None  # nothing returned
    files.write_result("t", None)
    assert collect(files, 100) is None
    files.write_result("t", {"n": 1.5, "s": "é"})
    assert json.loads(collect(files, 100) or "") == {"n": 1.5, "s": "é"}


def test_a_result_over_the_cap_or_not_json_is_refused_with_the_reason(tmp_path: Path) -> None:
    files = prepare(tmp_path, 1, 1, {})
    files.result.write_text(json.dumps("x" * 200))
    with pytest.raises(
        ResultRefused, match="202 bytes is over \\[worker\\] max_result_bytes = 100"
    ):
        collect(files, 100)
    files.result.write_text("hello\n")
    with pytest.raises(ResultRefused, match="does not hold JSON"):
        collect(files, 100)
    files.result.write_text("NaN")
    with pytest.raises(ResultRefused, match="does not hold JSON"):
        collect(files, 100)


def test_a_python_value_json_cannot_hold_fails_the_child(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = AttemptFiles(str(tmp_path))
    with pytest.raises(SystemExit):
        files.write_result("t", {1, 2})
    assert "task 't' returned a value that is not JSON (set)" in capsys.readouterr().err
    assert not files.result.exists()


FLOW = r"""
from datetime import datetime
from haflow import DAG, BashTask, task

@task
def extract():
    return {"rows": [1, 2]}

@task
def total(data):
    return sum(data["rows"])

with DAG("flow", start_date=datetime(2026, 1, 1)):
    t = total(extract())
    show = 'cat "$HAFLOW_UPSTREAM_RESULTS"; echo; echo [9] > "$HAFLOW_RESULT_FILE"'
    t >> BashTask("show", bash_command=show)
"""


def test_dags_test_passes_results_from_task_to_task(tmp_path: Path) -> None:
    """`haflow dags test` runs the tasks here in order, each reading its ancestors' results."""
    from haflow.dag.loader import load_dag_file
    from haflow.worker.dryrun import test_dag

    (tmp_path / "flow.py").write_text(FLOW)
    (dag,), error = load_dag_file(str(tmp_path / "flow.py"))
    assert error is None
    out: list[str] = []
    states = test_dag(dag, {}, out.append, ("PATH",))
    assert {t: s.value for t, s in states.items()} == {
        "extract": "success",
        "total": "success",
        "show": "success",
    }
    text = "\n".join(out)
    assert "[total] result: 3" in text
    assert '{"extract": {"rows": [1, 2]}, "total": 3}' in text
    assert "[show] result: [9]" in text
