"""Which task instances a clear resets: the chosen tasks, with their downstream or upstream
tasks when asked, never one in flight or not yet run, and only failed ones when asked.

Pure: it takes the DAG's edges and the run's task states, and names the tasks to reset. A
downstream task left `upstream_failed` or `skipped` by a failure is cleared with the task
that failed, so the whole branch runs again (Airflow clears downstream the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from haflow.core.states import IN_FLIGHT_TASK_STATES, TaskState

_FAILED = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})
# in flight: a worker may hold it; not yet run: clearing it would change nothing
_NOT_CLEARABLE = IN_FLIGHT_TASK_STATES | {TaskState.NONE}


@dataclass(frozen=True)
class ClearScope:
    """What a clear covers beyond the tasks it names."""

    downstream: bool = False
    upstream: bool = False
    only_failed: bool = False


JUST_THESE = ClearScope()


class UnknownTasks(ValueError):
    """A clear named tasks that the DAG does not have."""


def tasks_to_clear(
    upstream_of: Mapping[str, Sequence[str]],
    states: Mapping[str, TaskState],
    task_ids: Iterable[str],
    scope: ClearScope,
) -> list[str]:
    """The task ids whose instances `scope` resets, in the DAG's order (`upstream_of` maps
    each task to its direct upstream tasks; `states` holds the run's task instances). No
    task ids names every task of the run."""
    chosen = list(dict.fromkeys(task_ids))
    unknown = [t for t in chosen if t not in upstream_of]
    if unknown:
        raise UnknownTasks(", ".join(sorted(unknown)))
    picked = set(chosen) if chosen else set(upstream_of)
    if scope.downstream:
        picked |= _reach(_downstream_of(upstream_of), picked)
    if scope.upstream:
        picked |= _reach(upstream_of, picked)
    return [
        t
        for t in upstream_of
        if t in picked
        and t in states
        and states[t] not in _NOT_CLEARABLE
        and (not scope.only_failed or states[t] in _FAILED)
    ]


def _downstream_of(upstream_of: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in upstream_of}
    for task, ups in upstream_of.items():
        for up in ups:
            out.setdefault(up, []).append(task)
    return out


def _reach(edges: Mapping[str, Sequence[str]], start: Iterable[str]) -> set[str]:
    """Every task reachable from `start` along `edges`, `start` excluded unless on a cycle."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
