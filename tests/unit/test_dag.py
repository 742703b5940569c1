"""DAG and task definitions: dependencies, validation, defaults and the @task decorator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from haflow.dag import DAG, BashTask, PythonTask, TriggerRule, task
from haflow.errors import DagDefinitionError

START = datetime(2024, 1, 1, tzinfo=UTC)


def make_dag(dag_id: str = "d", **kwargs: object) -> DAG:
    return DAG(dag_id, fileloc="/dags/d.py", **kwargs)  # type: ignore[arg-type]


def bash(task_id: str, **kwargs: Any) -> BashTask:
    return BashTask(task_id, "true", **kwargs)


def edges(dag: DAG) -> set[tuple[str, str]]:
    return {(t.task_id, down) for t in dag.tasks.values() for down in t.downstream_task_ids}


# --- dependencies ----------------------------------------------------------------------------


def test_rshift_chain_links_left_to_right() -> None:
    with make_dag() as dag:
        a, b, c = bash("a"), bash("b"), bash("c")
        result = a >> b >> c
    assert result is c
    assert edges(dag) == {("a", "b"), ("b", "c")}
    assert b.upstream_task_ids == {"a"}
    assert b.downstream_task_ids == {"c"}


def test_lshift_links_right_to_left() -> None:
    with make_dag() as dag:
        a, b, c = bash("a"), bash("b"), bash("c")
        assert (c << b << a) is a
    assert edges(dag) == {("a", "b"), ("b", "c")}


def test_fan_out_and_fan_in_with_lists() -> None:
    with make_dag() as dag:
        a, b, c, d = bash("a"), bash("b"), bash("c"), bash("d")
        assert (a >> [b, c]) == [b, c]
        assert ([b, c] >> d) is d
    assert edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert d.upstream_task_ids == {"b", "c"}


def test_reversed_list_operators() -> None:
    with make_dag() as dag:
        a, b, c, d = bash("a"), bash("b"), bash("c"), bash("d")
        assert ([b, c] << a) is a
        assert (d << [b, c]) == [b, c]
    assert edges(dag) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}


def test_set_upstream_and_downstream() -> None:
    with make_dag() as dag:
        a, b, c = bash("a"), bash("b"), bash("c")
        a.set_downstream(b)
        c.set_upstream([a, b])
    assert edges(dag) == {("a", "b"), ("a", "c"), ("b", "c")}


def test_tasks_of_different_dags_cannot_be_linked() -> None:
    with make_dag("one"):
        a = bash("a")
    with make_dag("two"):
        b = bash("b")
    with pytest.raises(DagDefinitionError, match="different DAGs"):
        a >> b
    assert a.downstream_task_ids == set()


def test_linking_something_else_is_refused() -> None:
    with make_dag():
        a = bash("a")
        with pytest.raises(DagDefinitionError, match="can only link tasks"):
            a >> "b"  # type: ignore[operator]


# --- validation ------------------------------------------------------------------------------


def test_cycle_message_names_dag_file_and_path() -> None:
    with make_dag("cyclic") as dag:
        a, b, c = bash("a"), bash("b"), bash("c")
        a >> b >> c >> a
    with pytest.raises(DagDefinitionError) as info:
        dag.validate()
    message = str(info.value)
    assert "'cyclic'" in message
    assert "/dags/d.py" in message
    assert "a -> b -> c -> a" in message


def test_self_loop_is_a_cycle() -> None:
    with make_dag() as dag:
        a = bash("a")
        bash("b") >> a >> a
    with pytest.raises(DagDefinitionError, match="a -> a"):
        dag.validate()


def test_acyclic_diamond_validates_and_orders() -> None:
    with make_dag() as dag:
        a, b, c, d = bash("a"), bash("b"), bash("c"), bash("d")
        d << [b, c] << a
    dag.validate()
    order = dag.topological_order()
    assert order[0] == "a"
    assert order[-1] == "d"
    assert sorted(order) == ["a", "b", "c", "d"]
    assert [t.task_id for t in dag.roots] == ["a"]


def test_duplicate_task_id_names_dag_file_and_task() -> None:
    with make_dag("dupes"):
        bash("same")
        with pytest.raises(DagDefinitionError) as info:
            bash("same")
    message = str(info.value)
    assert "'dupes'" in message
    assert "/dags/d.py" in message
    assert "'same'" in message


@pytest.mark.parametrize("bad", ["", "has space", "slash/no", "x" * 251])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(DagDefinitionError, match="invalid DAG id"):
        make_dag(bad)
    with make_dag(), pytest.raises(DagDefinitionError, match="invalid task id"):
        bash(bad)


def test_task_outside_a_dag_is_refused() -> None:
    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        bash("lonely")


def test_explicit_dag_argument_works_without_context() -> None:
    dag = make_dag()
    t = bash("a", dag=dag)
    assert dag.task("a") is t
    with pytest.raises(DagDefinitionError, match="no task 'zzz'"):
        dag.task("zzz")


def test_nested_dag_contexts_restore_the_outer_one() -> None:
    with make_dag("outer") as outer:
        with make_dag("inner") as inner:
            bash("i")
        bash("o")
    assert set(inner.tasks) == {"i"}
    assert set(outer.tasks) == {"o"}
    with pytest.raises(DagDefinitionError):
        bash("after")


# --- DAG arguments ---------------------------------------------------------------------------


def test_bad_cron_names_dag_file_and_expression() -> None:
    with pytest.raises(DagDefinitionError) as info:
        make_dag("crony", schedule="every day", start_date=START)
    message = str(info.value)
    assert "'crony'" in message
    assert "/dags/d.py" in message
    assert "'every day'" in message


def test_scheduled_dag_needs_start_date() -> None:
    with pytest.raises(DagDefinitionError, match="start_date"):
        make_dag(schedule="@daily")
    assert make_dag(schedule=None).schedule_obj is None


def test_naive_start_date_is_utc_and_schedule_is_parsed() -> None:
    dag = make_dag(schedule="@hourly", start_date=datetime(2024, 1, 1, 5))
    assert dag.start_date == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert dag.schedule_obj is not None
    assert dag.schedule_obj.expression == "0 * * * *"


def test_max_active_runs_must_be_positive() -> None:
    with pytest.raises(DagDefinitionError, match="max_active_runs"):
        make_dag(max_active_runs=0)


def test_fileloc_defaults_to_the_callers_file() -> None:
    assert DAG("here").fileloc == __file__


def test_fingerprint_is_stable_and_tracks_structure() -> None:
    def build(retries: int, linked: bool) -> DAG:
        with make_dag(schedule="@daily", start_date=START) as dag:
            a, b = bash("a", retries=retries), bash("b")
            if linked:
                a >> b
        return dag

    base = build(1, True).fingerprint()
    assert build(1, True).fingerprint() == base
    assert build(2, True).fingerprint() != base
    assert build(1, False).fingerprint() != base


# --- task arguments --------------------------------------------------------------------------


def test_default_args_are_inherited_and_overridable() -> None:
    defaults = {"retries": 3, "retry_delay": 30, "execution_timeout": timedelta(minutes=5)}
    with make_dag(default_args=defaults):
        inherited = bash("a")
        own = bash("b", retries=0, retry_delay=timedelta(seconds=1), execution_timeout=7)
    assert inherited.retries == 3
    assert inherited.retry_delay == timedelta(seconds=30)
    assert inherited.execution_timeout == timedelta(minutes=5)
    assert own.retries == 0
    assert own.retry_delay == timedelta(seconds=1)
    assert own.execution_timeout == timedelta(seconds=7)


def test_builtin_defaults() -> None:
    with make_dag():
        t = bash("a")
    assert (t.retries, t.retry_delay, t.execution_timeout) == (0, timedelta(seconds=300), None)
    assert t.trigger_rule is TriggerRule.ALL_SUCCESS
    assert t.queue == "default"
    assert t.kind == "bash"


@pytest.mark.parametrize(
    "kwargs", [{"retries": -1}, {"retries": "3"}, {"retry_delay": "soon"}, {"retry_delay": -5}]
)
def test_bad_retry_policy_is_refused(kwargs: dict[str, object]) -> None:
    with make_dag(), pytest.raises(DagDefinitionError):
        bash("a", **kwargs)


def test_trigger_rule_accepts_enum_and_string_values() -> None:
    with make_dag():
        assert bash("a", trigger_rule="all_done").trigger_rule is TriggerRule.ALL_DONE
        assert bash("b", trigger_rule=TriggerRule.ONE_FAILED).trigger_rule is TriggerRule.ONE_FAILED


def test_bad_trigger_rule_lists_allowed_values() -> None:
    with make_dag() as dag, pytest.raises(DagDefinitionError) as info:
        bash("a", trigger_rule="whenever")
    message = str(info.value)
    assert "'whenever'" in message
    assert all(rule.value in message for rule in TriggerRule)
    assert "a" not in dag.tasks  # a rejected task never joins its DAG


def test_bash_task_checks_its_command() -> None:
    with make_dag() as dag:
        with pytest.raises(DagDefinitionError, match="bash_command"):
            BashTask("a", "  ")
        t = BashTask("b", "echo $X", env={"X": "1"})
    assert t.env == {"X": "1"}
    assert "a" not in dag.tasks


def test_python_task_needs_a_callable_and_runs_it() -> None:
    with make_dag():
        with pytest.raises(DagDefinitionError, match="callable"):
            PythonTask("a", "not callable")  # type: ignore[arg-type]
        t = PythonTask("b", lambda x, y: x + y, op_kwargs={"x": 2, "y": 3})
    assert t.kind == "python"
    assert t.run_callable() == 5


# --- @task -----------------------------------------------------------------------------------


def test_task_decorator_creates_python_tasks_with_unique_ids() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    with make_dag() as dag:
        first = add(x=1, y=2)
        second = add(x=3, y=4)
        third = add(x=5, y=6)
        first >> second
    assert isinstance(first, PythonTask)
    assert [first.task_id, second.task_id, third.task_id] == ["add", "add__1", "add__2"]
    assert second.op_kwargs == {"x": 3, "y": 4}
    assert second.run_callable() == 7
    assert edges(dag) == {("add", "add__1")}


def test_task_decorator_with_arguments() -> None:
    @task(task_id="custom", retries=4, trigger_rule="all_done")
    def work() -> str:
        return "done"

    with make_dag():
        t = work()
    assert t.task_id == "custom"
    assert t.retries == 4
    assert t.trigger_rule is TriggerRule.ALL_DONE
    assert t.run_callable() == "done"
    assert work.__name__ == "work"


def test_task_decorator_ids_restart_per_dag() -> None:
    @task
    def step() -> None:
        return None

    with make_dag("one"):
        assert step().task_id == "step"
    with make_dag("two"):
        assert step().task_id == "step"


def test_task_decorator_names_positional_arguments_and_refuses_what_does_not_fit() -> None:
    @task
    def add(x: int, y: int = 2) -> int:
        return x + y

    with make_dag():
        assert add(1).op_kwargs == {"x": 1}
        assert add(1, y=5).op_kwargs == {"x": 1, "y": 5}
        with pytest.raises(DagDefinitionError, match="by keyword"):
            add(1, 2, 3)
        with pytest.raises(DagDefinitionError, match="by keyword"):
            add(1, x=2)


def test_task_decorator_outside_a_dag() -> None:
    @task
    def step() -> None:
        return None

    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        step()
