"""The one rule for an ended attempt (haflow.core.attempt_end), for every ending against
retries, `[worker] max_losses` and `reclaim_consumes_retry`; and the proof that the leader's
reclaim and the worker's own report go through it alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haflow.core.attempt_end import Ending, EndPolicy, Tally, after_attempt
from haflow.core.reclamation import ended
from haflow.core.snapshot import Limits, TISnap
from haflow.core.states import AttemptState, TaskState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DELAY = 30.0
LOST = (Ending.RECLAIMED, Ending.ABANDONED)


def tally(failures: int = 0, losses: int = 0, retries: int = 2) -> Tally:
    return Tally(failures, losses, retries, DELAY)


def test_success_succeeds_and_keeps_the_counters() -> None:
    got = after_attempt(tally(1, 1), Ending.SUCCESS, EndPolicy(), NOW)
    assert (got.state, got.failures, got.losses, got.next_try_at) == (TaskState.SUCCESS, 1, 1, None)


@pytest.mark.parametrize("ending", [Ending.FAILED, Ending.TIMED_OUT])
def test_a_failure_uses_a_retry_after_the_delay_then_fails(ending: Ending) -> None:
    first = after_attempt(tally(0), ending, EndPolicy(), NOW)
    assert (first.state, first.failures, first.losses) == (TaskState.UP_FOR_RETRY, 1, 0)
    assert first.next_try_at == NOW + timedelta(seconds=DELAY)
    last = after_attempt(tally(2), ending, EndPolicy(), NOW)
    assert (last.state, last.failures, last.next_try_at) == (TaskState.FAILED, 3, None)


@pytest.mark.parametrize("ending", LOST)
def test_a_loss_is_retried_at_once_without_using_a_retry(ending: Ending) -> None:
    got = after_attempt(tally(failures=2, losses=0), ending, EndPolicy(), NOW)
    assert (got.state, got.failures, got.losses, got.next_try_at) == (
        TaskState.UP_FOR_RETRY,
        2,
        1,
        NOW,
    )


@pytest.mark.parametrize("ending", LOST)
def test_a_loss_uses_a_retry_when_configured(ending: Ending) -> None:
    policy = EndPolicy(reclaim_consumes_retry=True)
    got = after_attempt(tally(failures=0), ending, policy, NOW)
    assert (got.state, got.failures, got.losses) == (TaskState.UP_FOR_RETRY, 1, 1)
    assert got.next_try_at == NOW + timedelta(seconds=DELAY)
    spent = after_attempt(tally(failures=2), ending, policy, NOW)
    assert (spent.state, spent.failures, spent.losses) == (TaskState.FAILED, 3, 1)


@pytest.mark.parametrize("ending", LOST)
def test_losses_fail_the_task_instance_at_the_cap_whoever_noticed(ending: Ending) -> None:
    policy = EndPolicy(max_losses=3)
    below = after_attempt(tally(losses=1), ending, policy, NOW)
    assert (below.state, below.losses, below.note) == (TaskState.UP_FOR_RETRY, 2, "")
    capped = after_attempt(tally(failures=0, losses=2), ending, policy, NOW)
    assert (capped.state, capped.failures, capped.losses) == (TaskState.FAILED, 1, 3)
    assert "max_losses" in capped.note


def test_failures_do_not_count_toward_the_loss_cap() -> None:
    got = after_attempt(tally(failures=0, losses=2), Ending.FAILED, EndPolicy(max_losses=3), NOW)
    assert (got.state, got.losses) == (TaskState.UP_FOR_RETRY, 2)


@pytest.mark.parametrize(
    ("ending", "state"),
    [
        (Ending.SUCCESS, AttemptState.SUCCESS),
        (Ending.FAILED, AttemptState.FAILED),
        (Ending.TIMED_OUT, AttemptState.TIMED_OUT),
        (Ending.RECLAIMED, AttemptState.LOST),
        (Ending.ABANDONED, AttemptState.LOST),
    ],
)
def test_each_ending_closes_the_attempt_row_in_its_state(ending: Ending, state: str) -> None:
    assert ending.attempt_state == state


@pytest.mark.parametrize("losses", [0, 1, 2])
@pytest.mark.parametrize("consumes", [False, True])
@pytest.mark.parametrize("failures", [0, 2])
def test_the_leaders_reclaim_and_the_workers_report_agree(
    losses: int, consumes: bool, failures: int
) -> None:
    """The leader's change for a reclaimed attempt is exactly the rule's verdict, the one the
    worker's report of a lost attempt gets (attempts.finish calls after_attempt too)."""
    ti = TISnap(
        7,
        "t",
        TaskState.RUNNING,
        attempt=3,
        failures=failures,
        losses=losses,
        retries=2,
        retry_delay_s=DELAY,
    )
    limits = Limits(open_slots=1, max_losses=3, reclaim_consumes_retry=consumes)
    change = ended(ti, NOW, Ending.RECLAIMED, limits, "silent")
    rule = after_attempt(tally(failures, losses), Ending.ABANDONED, EndPolicy(3, consumes), NOW)
    assert (change.state, change.failures, change.losses, change.next_try_at) == (
        rule.state,
        rule.failures,
        rule.losses,
        rule.next_try_at,
    )
    assert change.attempt_state == "lost"
