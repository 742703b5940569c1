"""Tasks: the nodes of a DAG, their retry policy and the `>>` / `<<` dependency operators.

A task belongs to exactly one DAG from construction on and registers itself there; it can only
be linked to tasks of that same DAG, so dependencies never cross DAGs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, ClassVar, TypeAlias, overload

from haflow.core.ids import NAME, NAME_RULE
from haflow.core.notices import TASK_HOOKS
from haflow.core.pools import DEFAULT_POOL
from haflow.core.states import TriggerRule
from haflow.dag.dag import DAG, check_id, current_dag
from haflow.dag.notifiers import hook_list
from haflow.dag.results import references
from haflow.errors import DagDefinitionError

DEFAULT_RETRY_DELAY = timedelta(seconds=300)
DEFAULT_MAX_RETRY_DELAY = timedelta(days=1)
"""The cap of an exponential backoff that names none (Airflow's too)."""

TaskOrTasks: TypeAlias = "BaseTask | Iterable[BaseTask]"


def as_duration(value: object, name: str, where: str) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise DagDefinitionError(f"{where}: {name} must be a timedelta or seconds, got {value!r}")
    if result < timedelta(0):
        raise DagDefinitionError(f"{where}: {name} must not be negative, got {value!r}")
    return result


def _retries(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DagDefinitionError(f"{where}: retries must be an int >= 0, got {value!r}")
    return value


def _retry_policy(
    defaults: dict[str, Any],
    retries: int | None,
    retry_delay: timedelta | float | None,
    execution_timeout: timedelta | float | None,
    where: str,
) -> tuple[int, timedelta, timedelta | None]:
    """Explicit arguments win over the DAG's default_args, which win over the built-ins."""
    count = _retries(retries if retries is not None else defaults.get("retries", 0), where)
    delay = retry_delay if retry_delay is not None else defaults.get("retry_delay")
    timeout = (
        execution_timeout if execution_timeout is not None else defaults.get("execution_timeout")
    )
    return (
        count,
        DEFAULT_RETRY_DELAY if delay is None else as_duration(delay, "retry_delay", where),
        None if timeout is None else as_duration(timeout, "execution_timeout", where),
    )


def _backoff(
    defaults: dict[str, Any], exponential: bool | None, cap: timedelta | float | None, where: str
) -> timedelta | None:
    """The cap of the retry delay's exponential backoff (1x, 2x, 4x ... `retry_delay`), or
    None for a fixed delay; explicit arguments win over the DAG's default_args."""
    on = exponential if exponential is not None else defaults.get("retry_exponential_backoff")
    if on is None or on is False:
        return None
    if on is not True:
        raise DagDefinitionError(f"{where}: retry_exponential_backoff must be True or False")
    limit = cap if cap is not None else defaults.get("max_retry_delay")
    return (
        DEFAULT_MAX_RETRY_DELAY if limit is None else as_duration(limit, "max_retry_delay", where)
    )


def positive_int(value: object, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DagDefinitionError(f"{where}: {name} must be an int >= 1, got {value!r}")
    return value


def _pool(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise DagDefinitionError(f"{where}: pool must be {NAME_RULE}, got {value!r}")
    return value


def _trigger_rule(value: object, where: str) -> TriggerRule:
    if isinstance(value, str):  # a TriggerRule member is a str as well
        try:
            return TriggerRule(value)
        except ValueError:
            pass
    allowed = ", ".join(r.value for r in TriggerRule)
    raise DagDefinitionError(f"{where}: unknown trigger_rule {value!r}; allowed values: {allowed}")


def _task_list(other: object) -> list[BaseTask]:
    items = [other] if isinstance(other, BaseTask) else other
    if not isinstance(items, Iterable) or isinstance(items, str | bytes):
        raise DagDefinitionError(f"can only link tasks or lists of tasks, not {other!r}")
    tasks = list(items)
    for t in tasks:
        if not isinstance(t, BaseTask):
            raise DagDefinitionError(f"can only link tasks or lists of tasks, not {t!r}")
    return tasks


class BaseTask:
    """A node of a DAG. `retries`, `retry_delay` and `execution_timeout` fall back on the
    DAG's default_args, then on 0 retries, 300 s and no timeout; so do the callbacks
    (`on_success_callback`, `on_failure_callback`, `on_retry_callback`: a function called
    with the event's context, a `Webhook`, an `Email`, or a list of them)."""

    kind: ClassVar[str] = "base"

    def __init__(
        self,
        task_id: str,
        *,
        dag: DAG | None = None,
        retries: int | None = None,
        retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        trigger_rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
        queue: str = "default",
        retry_exponential_backoff: bool | None = None,
        max_retry_delay: timedelta | float | None = None,
        on_success_callback: object = None,
        on_failure_callback: object = None,
        on_retry_callback: object = None,
        depends_on_past: bool | None = None,
        pool: str | None = None,
        pool_slots: int | None = None,
        max_active_tis_per_dag: int | None = None,
    ) -> None:
        owner = dag if dag is not None else current_dag()
        if owner is None:
            raise DagDefinitionError(
                f"task {task_id!r} is created outside a DAG; create it inside "
                "`with DAG(...):` or pass dag=..."
            )
        where = f"DAG {owner.dag_id!r} in {owner.fileloc or '<unknown file>'}"
        self.task_id = check_id("task", task_id, where)
        where = f"{where}, task {task_id!r}"
        self.dag: DAG = owner
        self.retries, self.retry_delay, self.execution_timeout = _retry_policy(
            owner.default_args, retries, retry_delay, execution_timeout, where
        )
        self.retry_backoff_cap = _backoff(
            owner.default_args, retry_exponential_backoff, max_retry_delay, where
        )
        self.trigger_rule = _trigger_rule(trigger_rule, where)
        past = depends_on_past
        if past is None:
            past = owner.default_args.get("depends_on_past", False)
        if not isinstance(past, bool):
            raise DagDefinitionError(
                f"{where}: depends_on_past must be True or False, got {past!r}"
            )
        self.depends_on_past = past
        defaults = owner.default_args
        self.pool = _pool(pool if pool is not None else defaults.get("pool", DEFAULT_POOL), where)
        self.pool_slots = positive_int(
            pool_slots if pool_slots is not None else defaults.get("pool_slots", 1),
            "pool_slots",
            where,
        )
        cap = max_active_tis_per_dag
        if cap is None:
            cap = defaults.get("max_active_tis_per_dag")
        self.max_active_tis_per_dag = (
            None if cap is None else positive_int(cap, "max_active_tis_per_dag", where)
        )
        if not isinstance(queue, str) or not queue:
            raise DagDefinitionError(f"{where}: queue must be a non-empty string")
        self.queue = queue
        given = {
            "on_success_callback": on_success_callback,
            "on_failure_callback": on_failure_callback,
            "on_retry_callback": on_retry_callback,
        }
        self.hooks = {  # callbacks and notifiers; the DAG's default_args fill those not given
            hook: hook_list(v if v is not None else owner.default_args.get(hook), where)
            for hook, v in given.items()
        }
        assert self.hooks.keys() == TASK_HOOKS.keys()
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self._check_arguments(where)
        owner.add_task(self)

    def _check_arguments(self, where: str) -> None:
        """Subclasses raise DagDefinitionError on a bad argument, before the task joins its DAG."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dag.dag_id}.{self.task_id}>"

    @property
    def output(self) -> BaseTask:
        """This task's result, as an argument of a Python task (Airflow's `.output`): passing
        the task itself means the same; either makes it upstream of the receiving task."""
        return self

    def _link(self, others: list[BaseTask]) -> None:
        for other in others:
            if other.dag is not self.dag:
                raise DagDefinitionError(
                    f"cannot link task {self.task_id!r} of DAG {self.dag.dag_id!r} with task "
                    f"{other.task_id!r} of DAG {other.dag.dag_id!r}: tasks of different DAGs"
                )

    def set_downstream(self, other: TaskOrTasks) -> None:
        """Make every task in `other` run after this one."""
        others = _task_list(other)
        self._link(others)
        for t in others:
            self.downstream_task_ids.add(t.task_id)
            t.upstream_task_ids.add(self.task_id)

    def set_upstream(self, other: TaskOrTasks) -> None:
        """Make this task run after every task in `other`."""
        for t in _task_list(other):
            t.set_downstream(self)

    # Each operator returns its right-hand side so `a >> b >> c` chains left to right.
    def __rshift__(self, other: TaskOrTasks) -> TaskOrTasks:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: TaskOrTasks) -> TaskOrTasks:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: TaskOrTasks) -> BaseTask:  # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: TaskOrTasks) -> BaseTask:  # [a, b] << self
        self.set_downstream(other)
        return self


class BashTask(BaseTask):
    """Runs `bash_command` with `bash -c`; `env` is added to the worker's environment. The
    `variables` and `connections` named are read when the attempt starts and given to bash as
    `$HAFLOW_VAR_<KEY>` (the value) and `$HAFLOW_CONN_<ID>` (the URI): upper-cased, `.` and
    `-` read as `_` (`haflow.dag.secrets`); a missing one fails the attempt, naming it."""

    kind: ClassVar[str] = "bash"

    def __init__(
        self,
        task_id: str,
        bash_command: str,
        env: dict[str, str] | None = None,
        variables: Sequence[str] = (),
        connections: Sequence[str] = (),
        **base: Any,
    ) -> None:
        self.bash_command = bash_command
        self.env: dict[str, str] = env if isinstance(env, dict) else {}
        self._raw_env: object = env
        self.variables = variables
        self.connections = connections
        super().__init__(task_id, **base)

    def _check_arguments(self, where: str) -> None:
        if not isinstance(self.bash_command, str) or not self.bash_command.strip():
            raise DagDefinitionError(f"{where}: bash_command must be a non-empty string")
        env = self._raw_env if self._raw_env is not None else {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise DagDefinitionError(f"{where}: env must be a dict of strings to strings")
        self.env = dict(env)
        for what in ("variables", "connections"):
            names = getattr(self, what)
            if isinstance(names, str) or not isinstance(names, list | tuple):
                raise DagDefinitionError(f"{where}: {what} must be a list of names")
            bad = [n for n in names if not isinstance(n, str) or not NAME.fullmatch(n)]
            if bad:
                raise DagDefinitionError(f"{where}: {what} must be names of {NAME_RULE}: {bad!r}")
            setattr(self, what, tuple(names))


class PythonTask(BaseTask):
    """Calls `python_callable(**op_kwargs)` on a worker, which finds it by re-parsing the file.
    A task in `op_kwargs` (at any depth of lists, tuples and dicts) stands for its result and
    becomes upstream of this one (`haflow.dag.results`); what the callable returns (JSON) is
    this task's result."""

    kind: ClassVar[str] = "python"

    def __init__(
        self,
        task_id: str,
        python_callable: Callable[..., object],
        op_kwargs: dict[str, Any] | None = None,
        **base: Any,
    ) -> None:
        self.python_callable = python_callable
        self.op_kwargs: dict[str, Any] = op_kwargs if isinstance(op_kwargs, dict) else {}
        self._raw_op_kwargs: object = op_kwargs
        super().__init__(task_id, **base)
        kwargs, upstream = references(self.op_kwargs, BaseTask)
        assert isinstance(kwargs, dict)
        self.op_kwargs = kwargs
        for t in upstream:
            self.set_upstream(t)

    def _check_arguments(self, where: str) -> None:
        if not callable(self.python_callable):
            raise DagDefinitionError(f"{where}: python_callable must be callable")
        if self._raw_op_kwargs is not None and not isinstance(self._raw_op_kwargs, dict):
            raise DagDefinitionError(f"{where}: op_kwargs must be a dict")
        self.op_kwargs = dict(self.op_kwargs)

    def run_callable(self) -> object:
        return self.python_callable(**self.op_kwargs)


class TaskFactory:
    """What `@task` turns a function into: calling it inside a DAG creates a PythonTask."""

    __name__: str  # copied from the function by update_wrapper, like __doc__ and __module__

    def __init__(self, function: Callable[..., object], task_args: dict[str, Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.task_args = dict(task_args)

    def __call__(self, *args: object, **kwargs: Any) -> PythonTask:
        """A PythonTask calling the function with these arguments; a task among them (as in
        `t2(t1())`) stands for its result and becomes upstream of the new one."""
        name = self.task_args.get("task_id") or self.function.__name__
        base = {k: v for k, v in self.task_args.items() if k != "task_id"}
        dag = base.get("dag") or current_dag()
        where = f"task {name!r}"
        if dag is not None:
            where = f"DAG {dag.dag_id!r} in {dag.fileloc or '<unknown file>'}, {where}"
        kwargs = {**self._by_name(where, args, kwargs), **kwargs}
        task_id = _free_task_id(dag, name) if dag is not None else name
        return PythonTask(task_id, self.function, op_kwargs=kwargs, **base)

    def _by_name(
        self, where: str, args: tuple[object, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Positional arguments under the names of the parameters they fill."""
        if not args:
            return {}
        params = list(inspect.signature(self.function).parameters.values())
        named = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        if len(args) > len(named) or any(p.name in kwargs for p in named[: len(args)]):
            raise DagDefinitionError(
                f"{where}: {len(args)} positional arguments do not fit the parameters "
                f"of {self.function.__name__}{inspect.signature(self.function)}; pass them by "
                "keyword"
            )
        return {p.name: a for p, a in zip(named, args, strict=False)}


def _free_task_id(dag: DAG, name: str) -> str:
    """`name`, or `name__N` with the smallest N not yet taken in `dag`."""
    candidate, n = name, 0
    while candidate in dag.tasks:
        n += 1
        candidate = f"{name}__{n}"
    return candidate


@overload
def task(function: Callable[..., object], /) -> TaskFactory: ...
@overload
def task(
    function: None = None, /, **task_args: Any
) -> Callable[[Callable[..., object]], TaskFactory]: ...
def task(
    function: Callable[..., object] | None = None, /, **task_args: Any
) -> TaskFactory | Callable[[Callable[..., object]], TaskFactory]:
    """Decorator making a function a task factory: `@task` or `@task(task_id=..., retries=...)`."""
    if function is not None:
        return TaskFactory(function, task_args)

    def decorate(fn: Callable[..., object]) -> TaskFactory:
        return TaskFactory(fn, task_args)

    return decorate
