"""The DAG: a named set of tasks, their dependencies and the schedule that creates its runs.

Invariant once `validate()` has passed: task ids are unique, every dependency names a task of
this DAG, and the dependency graph is acyclic. Every error names the DAG and the file it is
defined in, so a broken DAGs folder can be fixed from the message alone.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import re
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from haflow.core.limits import ID_CHARS
from haflow.core.notices import RUN_HOOKS, TASK_HOOKS, Rule
from haflow.dag.notifiers import Email, Webhook, hook_list, hook_rules
from haflow.dag.params import param_schemas
from haflow.dag.schedule import AnySchedule, check_timezone, in_utc, parse_schedule
from haflow.errors import DagDefinitionError

if TYPE_CHECKING:
    from types import TracebackType

    from haflow.dag.tasks import BaseTask

_ID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{ID_CHARS}}}")
_T = TypeVar("_T")

# A context variable (not a plain list) so DAG files parsed on different threads don't mix.
_OPEN_DAGS: contextvars.ContextVar[tuple[DAG, ...]] = contextvars.ContextVar(
    "haflow_open_dags", default=()
)


# DAGs constructed while a DAG file is being imported, so `with DAG(...):` needs no variable.
_CREATED: contextvars.ContextVar[list[DAG] | None] = contextvars.ContextVar(
    "haflow_created_dags", default=None
)


def check_id(kind: str, value: object, where: str) -> str:
    """Return `value` if it is a valid DAG/task id, else raise naming `where` it was found."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise DagDefinitionError(
            f"{where}: invalid {kind} id {value!r}; "
            f"use 1 to {ID_CHARS} letters, digits, '_', '.' or '-'"
        )
    return value


def current_dag() -> DAG | None:
    """The innermost DAG open as a context manager in this context, if any."""
    stack = _OPEN_DAGS.get()
    return stack[-1] if stack else None


def run_outside_dag_context(fn: Callable[[], _T]) -> _T:
    """Call `fn` with no DAG open, discarding whatever DAG contexts it leaves open."""

    def isolated() -> _T:
        _OPEN_DAGS.set(())
        return fn()

    return contextvars.copy_context().run(isolated)


def collect_created(fn: Callable[[], _T]) -> tuple[_T, list[DAG]]:
    """Call `fn` outside any DAG context; return its result and every DAG it constructed."""
    created: list[DAG] = []

    def collecting() -> _T:
        _CREATED.set(created)
        return fn()

    return run_outside_dag_context(collecting), created


def _caller_file() -> str | None:
    frame = inspect.currentframe()
    # Skip this helper and DAG.__init__ to reach the code that wrote `DAG(...)`.
    for _ in range(2):
        frame = frame.f_back if frame is not None else None
    return frame.f_code.co_filename if frame is not None else None


def _as_utc(value: datetime | None, zone: str, where: str, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise DagDefinitionError(f"{where}: {name} must be a datetime, got {value!r}")
    return in_utc(value, zone)  # naive means the DAG's timezone (UTC unless given)


def _zone_of(timezone: object, start_date: object, where: str) -> str:
    """The DAG's timezone: the one given, else the start_date's own when it is an IANA zone
    (as in Airflow), else UTC."""
    if timezone is None:
        own = start_date.tzinfo if isinstance(start_date, datetime) else None
        timezone = own.key if isinstance(own, ZoneInfo) else "UTC"
    elif isinstance(timezone, ZoneInfo):
        timezone = timezone.key
    return check_timezone(timezone, where)


class DAG:
    """A workflow definition; tasks created inside `with DAG(...)` join it automatically."""

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: str | timedelta | None = None,
        start_date: datetime | None = None,
        catchup: bool = False,
        max_active_runs: int = 16,
        default_args: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        description: str = "",
        fileloc: str | None = None,
        on_success_callback: object = None,
        on_failure_callback: object = None,
        params: dict[str, Any] | None = None,
        timezone: str | ZoneInfo | None = None,
        end_date: datetime | None = None,
        max_active_tasks: int | None = None,
    ) -> None:
        self.fileloc: str | None = fileloc if fileloc is not None else _caller_file()
        self.dag_id = check_id("DAG", dag_id, f"DAG in {self._file}")
        self.timezone = _zone_of(timezone, start_date, self._where)
        self.schedule_obj: AnySchedule | None = parse_schedule(
            schedule, dag_id=dag_id, fileloc=self.fileloc, timezone=self.timezone
        )
        # the text kept in the metastore: what the DAG file said, or the interval's expression
        self.schedule: str | None = None
        if self.schedule_obj is not None:
            keep = isinstance(schedule, str)  # "@daily" stays "@daily"
            self.schedule = str(schedule) if keep else self.schedule_obj.expression
        self.start_date = _as_utc(start_date, self.timezone, self._where, "start_date")
        self.end_date = _as_utc(end_date, self.timezone, self._where, "end_date")
        if self.end_date and self.start_date and self.end_date < self.start_date:
            raise DagDefinitionError(
                f"{self._where}: end_date {end_date!r} is before start_date {start_date!r}"
            )
        if schedule is not None and self.start_date is None:
            raise DagDefinitionError(f"{self._where}: a scheduled DAG needs a start_date")
        if isinstance(max_active_runs, bool) or not isinstance(max_active_runs, int):
            raise DagDefinitionError(f"{self._where}: max_active_runs must be an int")
        if max_active_runs < 1:
            raise DagDefinitionError(f"{self._where}: max_active_runs must be >= 1")
        self.catchup = bool(catchup)
        self.max_active_runs = max_active_runs
        if max_active_tasks is not None and (
            isinstance(max_active_tasks, bool)
            or not isinstance(max_active_tasks, int)
            or max_active_tasks < 1
        ):
            raise DagDefinitionError(
                f"{self._where}: max_active_tasks must be an int >= 1, got {max_active_tasks!r}"
            )
        self.max_active_tasks = max_active_tasks
        self.default_args: dict[str, Any] = dict(default_args or {})
        self.tags: list[str] = list(tags or [])
        self.description = description
        self.hooks = {  # the run's callbacks and notifiers (haflow.dag.notifiers)
            "on_success_callback": hook_list(on_success_callback, self._where),
            "on_failure_callback": hook_list(on_failure_callback, self._where),
        }
        self.params = param_schemas(params, self._where)  # {name: JSON schema}
        if self.schedule_obj is not None:
            required = [n for n, p in self.params.items() if "default" not in p]
            if required:
                raise DagDefinitionError(
                    f"{self._where}: a scheduled DAG's params need defaults: {required}"
                )
        self.tasks: dict[str, BaseTask] = {}
        collector = _CREATED.get()
        if collector is not None:
            collector.append(self)

    @property
    def _file(self) -> str:
        return self.fileloc or "<unknown file>"

    @property
    def _where(self) -> str:
        return f"DAG {self.dag_id!r} in {self._file}"

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id} ({len(self.tasks)} tasks)>"

    def __enter__(self) -> DAG:
        _OPEN_DAGS.set((*_OPEN_DAGS.get(), self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = list(_OPEN_DAGS.get())
        if self in stack:
            del stack[len(stack) - 1 - stack[::-1].index(self)]
        _OPEN_DAGS.set(tuple(stack))

    def add_task(self, task: BaseTask) -> None:
        """Register `task`; called by the task's constructor."""
        if task.task_id in self.tasks:
            raise DagDefinitionError(
                f"{self._where}: duplicate task id {task.task_id!r}; task ids must be unique"
            )
        self.tasks[task.task_id] = task

    def task(self, task_id: str) -> BaseTask:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise DagDefinitionError(f"{self._where} has no task {task_id!r}") from None

    @property
    def roots(self) -> list[BaseTask]:
        """Tasks with no upstream, in the order they were added."""
        return [t for t in self.tasks.values() if not t.upstream_task_ids]

    def validate(self) -> None:
        """Raise DagDefinitionError if a dependency is dangling or the graph has a cycle."""
        for t in self.tasks.values():
            unknown = (t.upstream_task_ids | t.downstream_task_ids) - self.tasks.keys()
            if unknown:
                raise DagDefinitionError(
                    f"{self._where}: task {t.task_id!r} depends on unknown tasks {sorted(unknown)}"
                )
        cycle = self._find_cycle()
        if cycle:
            raise DagDefinitionError(f"{self._where} has a cycle: {' -> '.join(cycle)}")

    def _find_cycle(self) -> list[str] | None:
        """A cycle path (first id repeated at the end) or None; iterative DFS, no recursion."""
        done: set[str] = set()
        for root in self.tasks:
            if root in done:
                continue
            path: list[str] = [root]
            on_path = {root}
            stack = [iter(sorted(self.tasks[root].downstream_task_ids))]
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    stack.pop()
                    done.add(path[-1])
                    on_path.discard(path.pop())
                elif nxt in on_path:
                    return [*path[path.index(nxt) :], nxt]
                elif nxt not in done:
                    path.append(nxt)
                    on_path.add(nxt)
                    stack.append(iter(sorted(self.tasks[nxt].downstream_task_ids)))
        return None

    def topological_order(self) -> list[str]:
        """Task ids with every task after its upstreams; ties keep insertion order."""
        self.validate()
        waiting = {tid: len(t.upstream_task_ids) for tid, t in self.tasks.items()}
        ready = deque(tid for tid, n in waiting.items() if n == 0)
        order: list[str] = []
        while ready:
            tid = ready.popleft()
            order.append(tid)
            for down in sorted(self.tasks[tid].downstream_task_ids):
                waiting[down] -= 1
                if waiting[down] == 0:
                    ready.append(down)
        return order

    def fingerprint(self) -> str:
        """A stable hash of everything the scheduler reads; it changes iff the structure does."""
        return hashlib.sha256(
            json.dumps(self.structure(), sort_keys=True).encode("utf-8")
        ).hexdigest()

    def notify_rules(self) -> list[Rule]:
        """Who is notified of which event of this DAG's runs and task instances."""
        rules: list[Rule] = []
        for hook, event in RUN_HOOKS.items():
            rules += hook_rules(
                event, self.hooks[hook], fileloc=self._file, task_id=None, hook=hook
            )
        for tid, t in self.tasks.items():
            for hook, event in TASK_HOOKS.items():
                rules += hook_rules(
                    event, t.hooks[hook], fileloc=self._file, task_id=tid, hook=hook
                )
        return rules

    def callback(self, task_id: str | None, hook: str, index: int) -> Callable[..., object]:
        """The function a callback rule names (its task, or the DAG itself when None)."""
        hooks = self.task(task_id).hooks if task_id is not None else self.hooks
        items = hooks.get(hook, [])
        fn = items[index] if 0 <= index < len(items) else None
        if fn is None or isinstance(fn, Webhook | Email):
            where = f"task {task_id!r}" if task_id else "the DAG"
            raise DagDefinitionError(
                f"{self._where}: {where} has no callable {hook}[{index}] any more "
                "(the file changed since the event)"
            )
        return fn

    def structure(self) -> dict[str, Any]:
        """What the scheduler reads of this DAG, as JSON-able data; tasks in topological order."""
        order = self.topological_order()
        return {
            "dag_id": self.dag_id,
            "schedule": self.schedule_obj.expression if self.schedule_obj else None,
            "timezone": self.timezone,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "max_active_tasks": self.max_active_tasks,
            "params": self.params,
            "tasks": {
                tid: {
                    "kind": t.kind,
                    "retries": t.retries,
                    "retry_delay": t.retry_delay.total_seconds(),
                    "retry_backoff_cap": (
                        t.retry_backoff_cap.total_seconds() if t.retry_backoff_cap else None
                    ),
                    "execution_timeout": (
                        t.execution_timeout.total_seconds() if t.execution_timeout else None
                    ),
                    "trigger_rule": str(t.trigger_rule),
                    "depends_on_past": t.depends_on_past,
                    "pool": t.pool,
                    "pool_slots": t.pool_slots,
                    "max_active_tis_per_dag": t.max_active_tis_per_dag,
                    "queue": t.queue,
                    "upstream": sorted(t.upstream_task_ids),
                }
                for tid, t in ((tid, self.tasks[tid]) for tid in order)
            },
        }


def dag(function: Callable[..., object] | None = None, /, **dag_args: Any) -> Any:
    """TaskFlow's `@dag`: a function whose body creates tasks becomes a DAG factory; calling it
    (once, at module level) creates the DAG, named after the function unless `dag_id` is
    given, described by its docstring unless `description` is. Every `DAG(...)` argument
    may be given to the decorator."""

    def decorate(fn: Callable[..., object]) -> Callable[..., DAG]:
        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> DAG:
            given = dict(dag_args)
            dag_id = given.pop("dag_id", fn.__name__)
            given.setdefault("description", inspect.getdoc(fn) or "")
            given.setdefault("fileloc", fn.__code__.co_filename)
            with DAG(dag_id, **given) as made:
                fn(*args, **kwargs)
            return made

        return factory

    return decorate(function) if function is not None else decorate
