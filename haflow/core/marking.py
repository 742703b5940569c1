"""What marking a run success or failed does to its task instances (Airflow's rules).

Pure: from the run's task states, the new state of each task instance that changes. Marking a
run success marks every task instance that did not succeed (or was skipped) success; marking
it failed fails those in flight and skips those that have not run, and leaves the finished
ones as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

from haflow.core.states import BETWEEN_ATTEMPTS, IN_FLIGHT_TASK_STATES, RunState, TaskState

MARKABLE_TASK_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED})
MARKABLE_RUN_STATES = frozenset({RunState.SUCCESS, RunState.FAILED})
_KEPT_BY_SUCCESS = frozenset({TaskState.SUCCESS, TaskState.SKIPPED})
_NOT_RUN = frozenset({TaskState.NONE, *BETWEEN_ATTEMPTS})


def run_marks(states: Mapping[str, TaskState], target: RunState) -> dict[str, TaskState]:
    """The task instances that marking the run `target` changes, with their new states."""
    if target not in MARKABLE_RUN_STATES:
        raise ValueError(f"a run is marked success or failed, not {target}")
    if target is RunState.SUCCESS:
        return {t: TaskState.SUCCESS for t, s in states.items() if s not in _KEPT_BY_SUCCESS}
    out = {t: TaskState.FAILED for t, s in states.items() if s in IN_FLIGHT_TASK_STATES}
    out.update({t: TaskState.SKIPPED for t, s in states.items() if s in _NOT_RUN})
    return out
