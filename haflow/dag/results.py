"""Results passed between tasks: references made at parse time, read at run time.

At parse time, a task (or `task.output`) given as an argument of a Python task, at any depth
of lists, tuples and dicts, becomes a `ResultRef` and an edge: `t2(x=t1())` makes `t1`
upstream of `t2`, never hands the task object to the function. At run time each reference is
replaced by the result the upstream task's successful attempt returned (None when it returned
none), and `context["ti"].pull(task_id)` reads any ancestor's result. Only ancestors: any other
task's result may not exist yet, so pulling it is an error that names the task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from haflow.dag.tasks import BaseTask

T = TypeVar("T")


@dataclass(frozen=True)
class ResultRef:
    """The result of task `task_id` of the same DAG, resolved when the task that holds the
    reference runs."""

    task_id: str


def references(value: object, kind: type[T]) -> tuple[object, list[T]]:
    """`value` with every instance of `kind` (a task) in it replaced by a ResultRef to its
    result, and those tasks."""
    found: list[T] = []

    def walk(v: object) -> object:
        if isinstance(v, kind):
            found.append(v)
            return ResultRef(v.task_id)  # type: ignore[attr-defined]
        if isinstance(v, list | tuple):
            return type(v)(walk(x) for x in v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value), found


def resolve(value: object, results: Mapping[str, Any]) -> object:
    """`value` with each ResultRef replaced by that task's result (None if it has none)."""
    if isinstance(value, ResultRef):
        return results.get(value.task_id)
    if isinstance(value, list | tuple):
        return type(value)(resolve(x, results) for x in value)
    if isinstance(value, dict):
        return {k: resolve(x, results) for k, x in value.items()}
    return value


def ancestors(task: BaseTask) -> set[str]:
    """The ids of every task `task` runs after, directly or not."""
    seen: set[str] = set()
    todo = list(task.upstream_task_ids)
    while todo:
        tid = todo.pop()
        if tid not in seen:
            seen.add(tid)
            todo.extend(task.dag.tasks[tid].upstream_task_ids)
    return seen


def upstream_results(task: BaseTask, run_results: Mapping[str, Any]) -> dict[str, Any]:
    """The results among `run_results` (task id -> value) that `task` may read: its
    ancestors'."""
    mine = ancestors(task)
    return {tid: value for tid, value in run_results.items() if tid in mine}


class TaskContext:
    """`context["ti"]` (or a `ti` argument) of a running Python task: who it is, and `pull`
    to read an ancestor's result. `xcom_pull(task_ids=...)` is Airflow's spelling."""

    def __init__(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        readable: Iterable[str],
        results: Mapping[str, Any],
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.try_number = try_number
        self._readable = frozenset(readable)
        self._results = dict(results)

    def __repr__(self) -> str:
        return f"<TaskContext {self.dag_id}.{self.task_id} {self.run_id} try {self.try_number}>"

    def pull(self, task_id: str) -> Any:
        """The result task `task_id` of this run returned, None if it returned none or has
        not succeeded; it must be an ancestor of this task."""
        if task_id not in self._readable:
            raise ValueError(
                f"task {self.task_id!r} cannot pull the result of {task_id!r}: only the results "
                "of tasks it runs after (its ancestors) can be pulled"
            )
        return self._results.get(task_id)

    def xcom_pull(self, task_ids: str | Iterable[str], key: str = "return_value") -> Any:
        """Airflow's `xcom_pull` for return values: one task id gives its result, several a
        list of theirs."""
        if key != "return_value":
            raise ValueError(f"haflow keeps only return values; key {key!r} is not supported")
        if isinstance(task_ids, str):
            return self.pull(task_ids)
        return [self.pull(t) for t in task_ids]
