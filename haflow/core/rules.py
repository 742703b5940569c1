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
    if not states or rule is TriggerRule.ALWAYS:  # always: whatever its upstream does
        return Verdict.READY
    counts = Counter(states)
    failed = sum(counts[s] for s in _FAILED)
    done = all(s in FINISHED_TASK_STATES for s in states)
    early = _before_all_done(rule, states, counts, failed)
    if early is not None:
        return early
    if not done:
        return Verdict.WAIT
    if rule is TriggerRule.ONE_SUCCESS:  # every upstream ended, none succeeded
        return Verdict.UPSTREAM_FAILED
    if rule in _EARLY:  # every upstream ended, and what fires them never happened
        return Verdict.SKIP
    return _when_all_done(rule, counts, failed, len(states))


_EARLY = frozenset(
    {TriggerRule.ONE_SUCCESS, TriggerRule.ONE_FAILED, TriggerRule.ONE_DONE, TriggerRule.ALL_SKIPPED}
)
"""The rules that may decide before every upstream task ended."""


def _before_all_done(
    rule: TriggerRule, states: list[TaskState], counts: Counter[TaskState], failed: int
) -> Verdict | None:
    """The verdict of a rule that fires (or gives up) early, when it already does."""
    if rule is TriggerRule.ONE_SUCCESS and counts[TaskState.SUCCESS]:
        return Verdict.READY
    if rule is TriggerRule.ONE_FAILED and failed:
        return Verdict.READY
    if rule is TriggerRule.ONE_DONE and (counts[TaskState.SUCCESS] or failed):
        return Verdict.READY
    if rule is TriggerRule.ALL_SKIPPED:
        if any(s in FINISHED_TASK_STATES and s is not TaskState.SKIPPED for s in states):
            return Verdict.SKIP  # as soon as one upstream ended otherwise
        if all(s is TaskState.SKIPPED for s in states):
            return Verdict.READY
    return None


def _when_all_done(rule: TriggerRule, counts: Counter[TaskState], failed: int, n: int) -> Verdict:
    if rule is TriggerRule.ALL_DONE:
        return Verdict.READY
    if rule is TriggerRule.ALL_FAILED:
        return Verdict.READY if failed == n else Verdict.SKIP
    if rule is TriggerRule.NONE_FAILED:
        return Verdict.UPSTREAM_FAILED if failed else Verdict.READY
    if rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
        if failed:
            return Verdict.UPSTREAM_FAILED
        return Verdict.READY if counts[TaskState.SUCCESS] else Verdict.SKIP
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
