"""Which task instances a clear resets (haflow.core.clearing)."""

from __future__ import annotations

import pytest

from haflow.core.clearing import ClearScope, UnknownTasks, tasks_to_clear
from haflow.core.states import TaskState

S = TaskState
# extract >> [clean, audit]; clean >> load; audit is on its own branch
EDGES = {"extract": [], "clean": ["extract"], "audit": ["extract"], "load": ["clean"]}


def test_only_the_named_task_by_default() -> None:
    states = {"extract": S.FAILED, "clean": S.UPSTREAM_FAILED, "audit": S.SKIPPED, "load": S.NONE}
    assert tasks_to_clear(EDGES, states, ["extract"], ClearScope()) == ["extract"]


def test_downstream_takes_the_whole_branch_in_dag_order() -> None:
    states = {"extract": S.FAILED, "clean": S.UPSTREAM_FAILED, "audit": S.SKIPPED, "load": S.FAILED}
    got = tasks_to_clear(EDGES, states, ["extract"], ClearScope(downstream=True))
    assert got == ["extract", "clean", "audit", "load"]


def test_upstream_takes_the_ancestors_only() -> None:
    states = dict.fromkeys(EDGES, S.SUCCESS)
    assert tasks_to_clear(EDGES, states, ["load"], ClearScope(upstream=True)) == [
        "extract",
        "clean",
        "load",
    ]


def test_only_failed_keeps_failed_and_upstream_failed() -> None:
    states = {
        "extract": S.SUCCESS,
        "clean": S.FAILED,
        "audit": S.SUCCESS,
        "load": S.UPSTREAM_FAILED,
    }
    scope = ClearScope(downstream=True, only_failed=True)
    assert tasks_to_clear(EDGES, states, ["extract"], scope) == ["clean", "load"]


def test_never_one_in_flight_or_not_yet_run() -> None:
    states = {"extract": S.SUCCESS, "clean": S.RUNNING, "audit": S.QUEUED, "load": S.NONE}
    assert tasks_to_clear(EDGES, states, [], ClearScope()) == ["extract"]


def test_no_task_named_means_every_task() -> None:
    states = {"extract": S.SUCCESS, "clean": S.FAILED, "audit": S.UP_FOR_RETRY, "load": S.SKIPPED}
    assert tasks_to_clear(EDGES, states, [], ClearScope()) == list(EDGES)


def test_an_unknown_task_is_refused_by_name() -> None:
    with pytest.raises(UnknownTasks, match="nope"):
        tasks_to_clear(EDGES, dict.fromkeys(EDGES, S.SUCCESS), ["extract", "nope"], ClearScope())
