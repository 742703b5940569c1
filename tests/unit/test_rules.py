"""Pure rules: trigger rules over upstream states, a run's outcome, and what follows a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haflow.core.attempt_end import AfterFailure, after_failure
from haflow.core.rules import Verdict, evaluate_trigger, run_outcome
from haflow.core.states import RunState, TaskState, TriggerRule

S = TaskState.SUCCESS
F = TaskState.FAILED
UF = TaskState.UPSTREAM_FAILED
SK = TaskState.SKIPPED
NONE = TaskState.NONE
Q = TaskState.QUEUED
R = TaskState.RUNNING
RETRY = TaskState.UP_FOR_RETRY

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_no_upstream_is_ready_for_every_rule(rule: TriggerRule) -> None:
    assert evaluate_trigger(rule, []) is Verdict.READY


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_accepts_any_iterable_of_states(rule: TriggerRule) -> None:
    # A generator is consumed once; the verdict must match the one over a list.
    states = [S, F, SK]
    assert evaluate_trigger(rule, iter(states)) is evaluate_trigger(rule, states)


@pytest.mark.parametrize(
    ("rule", "upstream", "verdict"),
    [
        # all_success
        (TriggerRule.ALL_SUCCESS, [S, S], Verdict.READY),
        (TriggerRule.ALL_SUCCESS, [S, R], Verdict.WAIT),
        (TriggerRule.ALL_SUCCESS, [S, NONE], Verdict.WAIT),
        (TriggerRule.ALL_SUCCESS, [F, R], Verdict.WAIT),
        (TriggerRule.ALL_SUCCESS, [S, RETRY], Verdict.WAIT),
        (TriggerRule.ALL_SUCCESS, [S, F], Verdict.UPSTREAM_FAILED),
        (TriggerRule.ALL_SUCCESS, [S, UF], Verdict.UPSTREAM_FAILED),
        (TriggerRule.ALL_SUCCESS, [SK, F], Verdict.UPSTREAM_FAILED),
        (TriggerRule.ALL_SUCCESS, [S, SK], Verdict.SKIP),
        (TriggerRule.ALL_SUCCESS, [SK], Verdict.SKIP),
        # all_done
        (TriggerRule.ALL_DONE, [S, F, UF, SK], Verdict.READY),
        (TriggerRule.ALL_DONE, [F, Q], Verdict.WAIT),
        (TriggerRule.ALL_DONE, [S, RETRY], Verdict.WAIT),
        # all_failed
        (TriggerRule.ALL_FAILED, [F, UF], Verdict.READY),
        (TriggerRule.ALL_FAILED, [F, S], Verdict.SKIP),
        (TriggerRule.ALL_FAILED, [F, SK], Verdict.SKIP),
        (TriggerRule.ALL_FAILED, [F, R], Verdict.WAIT),
        # none_failed
        (TriggerRule.NONE_FAILED, [S, SK], Verdict.READY),
        (TriggerRule.NONE_FAILED, [SK, SK], Verdict.READY),
        (TriggerRule.NONE_FAILED, [S, F], Verdict.UPSTREAM_FAILED),
        (TriggerRule.NONE_FAILED, [S, UF], Verdict.UPSTREAM_FAILED),
        (TriggerRule.NONE_FAILED, [S, R], Verdict.WAIT),
        # one_success: fires as soon as one upstream succeeded
        (TriggerRule.ONE_SUCCESS, [S, R], Verdict.READY),
        (TriggerRule.ONE_SUCCESS, [S, NONE, Q], Verdict.READY),
        (TriggerRule.ONE_SUCCESS, [F, R], Verdict.WAIT),
        (TriggerRule.ONE_SUCCESS, [F, UF, SK], Verdict.UPSTREAM_FAILED),
        # one_failed: fires as soon as one upstream failed
        (TriggerRule.ONE_FAILED, [F, R], Verdict.READY),
        (TriggerRule.ONE_FAILED, [UF, NONE], Verdict.READY),
        (TriggerRule.ONE_FAILED, [S, R], Verdict.WAIT),
        (TriggerRule.ONE_FAILED, [S, SK], Verdict.SKIP),
        # none_failed_min_one_success: none failed, and at least one succeeded
        (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [S, SK], Verdict.READY),
        (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [SK, SK], Verdict.SKIP),
        (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [S, F], Verdict.UPSTREAM_FAILED),
        (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [SK, UF], Verdict.UPSTREAM_FAILED),
        (TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, [S, R], Verdict.WAIT),
        # one_done: as soon as one upstream succeeded or failed
        (TriggerRule.ONE_DONE, [S, R], Verdict.READY),
        (TriggerRule.ONE_DONE, [F, NONE], Verdict.READY),
        (TriggerRule.ONE_DONE, [SK, R], Verdict.WAIT),
        (TriggerRule.ONE_DONE, [SK, SK], Verdict.SKIP),
        # all_skipped: every upstream skipped; skipped as soon as one ended otherwise
        (TriggerRule.ALL_SKIPPED, [SK, SK], Verdict.READY),
        (TriggerRule.ALL_SKIPPED, [SK, R], Verdict.WAIT),
        (TriggerRule.ALL_SKIPPED, [S, R], Verdict.SKIP),
        (TriggerRule.ALL_SKIPPED, [SK, F], Verdict.SKIP),
        # always: whatever the upstream does, even before it ends
        (TriggerRule.ALWAYS, [NONE, R], Verdict.READY),
        (TriggerRule.ALWAYS, [F, UF], Verdict.READY),
    ],
)
def test_evaluate_trigger(rule: TriggerRule, upstream: list[TaskState], verdict: Verdict) -> None:
    assert evaluate_trigger(rule, upstream) is verdict


@pytest.mark.parametrize(
    ("states", "outcome"),
    [
        ([S, S], RunState.SUCCESS),
        ([S, SK], RunState.SUCCESS),
        ([S, F], RunState.FAILED),
        ([S, UF], RunState.FAILED),
        ([F, R], None),
        ([S, NONE], None),
        ([S, Q], None),
        ([S, RETRY], None),
        ([], RunState.SUCCESS),
    ],
)
def test_run_outcome(states: list[TaskState], outcome: RunState | None) -> None:
    assert run_outcome(states) is outcome


def test_after_failure_with_retries_left_waits_for_the_delay() -> None:
    got = after_failure(failures=0, retries=2, retry_delay_s=30, now=NOW)
    assert got == AfterFailure(TaskState.UP_FOR_RETRY, 1, NOW + timedelta(seconds=30))


def test_after_failure_on_the_last_retry_still_retries() -> None:
    got = after_failure(failures=1, retries=2, retry_delay_s=1.5, now=NOW)
    assert got == AfterFailure(TaskState.UP_FOR_RETRY, 2, NOW + timedelta(seconds=1.5))


@pytest.mark.parametrize(("failures", "retries"), [(0, 0), (2, 2), (5, 1)])
def test_after_failure_with_retries_exhausted_fails(failures: int, retries: int) -> None:
    got = after_failure(failures=failures, retries=retries, retry_delay_s=30, now=NOW)
    assert got == AfterFailure(TaskState.FAILED, failures + 1, None)


@pytest.mark.parametrize("failures", [0, 3])
def test_after_failure_not_counted_retries_at_once(failures: int) -> None:
    # Even with no retries left: a reclaimed attempt is not the task's fault.
    got = after_failure(
        failures=failures, retries=0, retry_delay_s=60, now=NOW, counts_as_failure=False
    )
    assert got == AfterFailure(TaskState.UP_FOR_RETRY, failures, NOW)


def test_exponential_backoff_doubles_the_delay_up_to_its_cap() -> None:
    def delay(failures: int, cap: float | None) -> float:
        nxt = after_failure(
            failures=failures, retries=100, retry_delay_s=10.0, now=NOW, backoff_cap_s=cap
        )
        assert nxt.next_try_at is not None
        return (nxt.next_try_at - NOW).total_seconds()

    assert [delay(f, 100.0) for f in range(5)] == [10.0, 20.0, 40.0, 80.0, 100.0]
    assert [delay(f, None) for f in range(3)] == [10.0, 10.0, 10.0]  # fixed
    assert delay(60, 1e9) == 1e9  # no overflow however many failures
