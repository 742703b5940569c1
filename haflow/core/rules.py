"""Pure rules over task states: trigger rules and a run's outcome (what follows an ended
attempt is `haflow.core.attempt_end`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import Enum

from haflow.core.states import FINISHED_TASK_STATES, RunState, TaskState, TriggerRule


class Verdict(Enum):
    WAIT = "wait"
    READY = "ready"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


_FAILED = (TaskState.FAILED, TaskState.UPSTREAM_FAILED)


def evaluate_trigger(rule: TriggerRule, upstream: Iterable[TaskState]) -> Verdict:
    """Decide whether a task may start, given the states of its direct upstream tasks."""
    states = list(upstream)
    if not states:
        return Verdict.READY
    counts = Counter(states)
    failed = sum(counts[s] for s in _FAILED)
    done = all(s in FINISHED_TASK_STATES for s in states)
    if rule is TriggerRule.ONE_SUCCESS:
        if counts[TaskState.SUCCESS]:
            return Verdict.READY
        return Verdict.UPSTREAM_FAILED if done else Verdict.WAIT
    if rule is TriggerRule.ONE_FAILED:
        if failed:
            return Verdict.READY
        return Verdict.SKIP if done else Verdict.WAIT
    if not done:
        return Verdict.WAIT
    return _when_all_done(rule, counts, failed, len(states))


def _when_all_done(rule: TriggerRule, counts: Counter[TaskState], failed: int, n: int) -> Verdict:
    if rule is TriggerRule.ALL_DONE:
        return Verdict.READY
    if rule is TriggerRule.ALL_FAILED:
        return Verdict.READY if failed == n else Verdict.SKIP
    if rule is TriggerRule.NONE_FAILED:
        return Verdict.UPSTREAM_FAILED if failed else Verdict.READY
    # ALL_SUCCESS
    if failed:
        return Verdict.UPSTREAM_FAILED
    if counts[TaskState.SKIPPED]:
        return Verdict.SKIP
    return Verdict.READY


def run_outcome(states: Iterable[TaskState]) -> RunState | None:
    """The run's final state once every task instance finished, else None."""
    states = list(states)
    if not all(s in FINISHED_TASK_STATES for s in states):
        return None
    if any(s in _FAILED for s in states):
        return RunState.FAILED
    return RunState.SUCCESS
