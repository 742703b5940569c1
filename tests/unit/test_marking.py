"""What marking a run success or failed does to its task instances (haflow.core.marking)."""

from __future__ import annotations

import pytest

from haflow.core.marking import run_marks
from haflow.core.states import RunState, TaskState

S = TaskState
RUN = {
    "ok": S.SUCCESS,
    "broke": S.FAILED,
    "below": S.UPSTREAM_FAILED,
    "skipped": S.SKIPPED,
    "queued": S.QUEUED,
    "running": S.RUNNING,
    "waiting": S.NONE,
    "retrying": S.UP_FOR_RETRY,
}


def test_success_marks_everything_that_did_not_succeed_or_skip() -> None:
    marks = run_marks(RUN, RunState.SUCCESS)
    assert marks == dict.fromkeys(
        ["broke", "below", "queued", "running", "waiting", "retrying"], S.SUCCESS
    )


def test_failed_fails_what_is_in_flight_and_skips_what_has_not_run() -> None:
    assert run_marks(RUN, RunState.FAILED) == {
        "queued": S.FAILED,
        "running": S.FAILED,
        "waiting": S.SKIPPED,
        "retrying": S.SKIPPED,
    }


def test_a_run_is_marked_success_or_failed_only() -> None:
    with pytest.raises(ValueError, match="success or failed"):
        run_marks(RUN, RunState.RUNNING)
