"""P4 on hand-made histories: every run succeeds unless its own tasks' code failed. A run failed
by the infrastructure (attempts lost up to the cap, killed by self-fencing, reported stopped by
their worker) breaks it; one whose task exited non-zero mid-way by its own records does not.
And the kept history (history.json) reads back for the checker, older files too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from haflow.chaos.checker import Status, check_p4
from haflow.chaos.checker.base import Bounds
from haflow.chaos.history import load_history
from haflow.chaos.model import Attempt, Event, History, Request, Run, TaskRecord
from haflow.chaos.scenario import _keep
from tests.fakes import assert_fails, one, t

CAP = "worker stopped heartbeating (9.1 s); lost 3 times, the cap ([worker] max_losses): failed"


def run(run_id: str, state: str) -> Run:
    return Run("d", run_id, "manual", state, t(0))


def att(run_id: str, task: str, n: int, state: str, reason: str = "") -> Attempt:
    return Attempt("d", run_id, task, n, state, 1, "worker1", t(n), t(n), t(n + 0.5), reason)


def recs(run_id: str, task: str, n: int, *kinds: str) -> tuple[TaskRecord, ...]:
    return tuple(
        TaskRecord("d", run_id, task, n, "worker1", kind, t(n + i / 10))
        for i, kind in enumerate(kinds)
    )


def lost_to_the_cap(run_id: str, task: str, last_reason: str = CAP) -> History:
    """Three attempts of `task` lost mid-way (started, ticked, no `end`), the third at the cap."""
    attempts = (
        att(run_id, task, 1, "lost", "worker stopped heartbeating (8.4 s)"),
        att(run_id, task, 2, "lost", "worker stopped heartbeating (8.2 s)"),
        att(run_id, task, 3, "lost", last_reason),
    )
    records = tuple(r for n in (1, 2, 3) for r in recs(run_id, task, n, "start", "tick"))
    return History(attempts=attempts, records=records)


def merged(*hs: History, runs: tuple[Run, ...]) -> History:
    return History(
        attempts=tuple(a for h in hs for a in h.attempts),
        records=tuple(r for h in hs for r in h.records),
        runs=runs,
    )


def code_failed(run_id: str, task: str, n: int = 1) -> History:
    """Attempt `n` of `task` ran its code (start, tick) and the process exited with code 1."""
    return History(
        attempts=(att(run_id, task, n, "failed", "exited with code 1"),),
        records=recs(run_id, task, n, "start", "tick"),
    )


def test_p4_passes_when_every_run_succeeds_whatever_happened_on_the_way() -> None:
    retried = History(
        attempts=(
            att("r2", "t000", 1, "lost", "worker stopped heartbeating"),
            att("r2", "t000", 2, "success"),
        ),
        records=recs("r2", "t000", 1, "start") + recs("r2", "t000", 2, "start", "end"),
    )
    h = merged(retried, runs=(run("r1", "success"), run("r2", "success")))
    v = one(h, "P4")
    assert v.status == Status.PASS, v
    assert v.title == "every run succeeds unless its own code failed"
    assert v.evidence == ("2 runs: 2 success",)


def test_p4_fails_on_a_run_failed_by_attempts_lost_up_to_the_cap() -> None:
    h = merged(lost_to_the_cap("r2", "t003"), runs=(run("r1", "success"), run("r2", "failed")))
    v = one(h, "P4")
    assert_fails(
        v,
        "run d/r2 ended failed: t003 attempt 3 lost",
        "lost 3 times, the cap",
        "no task's own code failed",
        "2 runs: 1 failed, 1 success",
    )
    assert "r1" not in "\n".join(v.evidence)


def test_p4_passes_on_a_run_failed_by_its_own_code() -> None:
    # t000's code exited 1 mid-way; its downstream t001 (upstream failed) has no attempt;
    # t002 succeeded; an earlier lost attempt of t000 is forgiven like any retried one
    lost_first = History(
        attempts=(att("r1", "t000", 1, "lost", "worker stopped heartbeating"),),
        records=recs("r1", "t000", 1, "start"),
    )
    ok = History(attempts=(att("r1", "t002", 1, "success"),), records=recs("r1", "t002", 1, "end"))
    h = merged(lost_first, code_failed("r1", "t000", 2), ok, runs=(run("r1", "failed"),))
    v = one(h, "P4")
    assert v.status == Status.PASS, v
    text = "\n".join(v.evidence)
    assert (
        "run d/r1 ended failed by its own code: t000 attempt 2 failed (exited with code 1)" in text
    )
    assert "1 runs: 1 failed (1 by their own code)" in text


def test_p4_fails_on_a_run_left_running() -> None:
    h = History(runs=(run("r1", "success"), run("r3", "running")))
    assert_fails(one(h, "P4"), "run d/r3 ended the observation 'running'")


SELF_FENCED = (
    "worker's ZooKeeper session ended; no heartbeat for 7.2 s; "
    "lost 3 times, the cap ([worker] max_losses): failed"
)


@pytest.mark.parametrize(
    "reason",
    [SELF_FENCED, "worker stopped while the attempt ran; lost 3 times, the cap: failed"],
    ids=["killed-by-self-fencing-then-reclaimed", "reported-stopped-by-its-worker"],
)
def test_p4_fails_on_a_run_whose_attempts_its_worker_killed(reason: str) -> None:
    h = merged(lost_to_the_cap("r1", "t000", reason), runs=(run("r1", "failed"),))
    assert_fails(one(h, "P4"), "run d/r1 ended failed", reason, "no task's own code failed")


@pytest.mark.parametrize(
    ("state", "reason", "kinds", "why"),
    [
        ("failed", "exited with code 1", ("start", "tick", "end"), "after its own `end`"),
        ("failed", "exited with code 1", (), "with no `start` of its own"),
        ("failed", "killed by signal SIGKILL", ("start",), "not an exit of the task's code"),
        ("failed", "exited with code 137", ("start",), "not an exit of the task's code"),
        ("failed", "could not start: OSError: gone", (), "not an exit of the task's code"),
        ("timed_out", "execution timeout", ("start", "tick"), "t000 attempt 1 timed_out"),
    ],
)
def test_p4_does_not_take_other_failures_for_the_tasks_own(
    state: str, reason: str, kinds: tuple[str, ...], why: str
) -> None:
    h = History(
        attempts=(att("r1", "t000", 1, state, reason),),
        records=recs("r1", "t000", 1, *kinds),
        runs=(run("r1", "failed"),),
    )
    assert_fails(one(h, "P4"), "run d/r1 ended failed", why, "no task's own code failed")


def test_p4_a_tasks_own_failure_does_not_excuse_an_infrastructure_one_in_the_same_run() -> None:
    h = merged(
        code_failed("r1", "t000"), lost_to_the_cap("r1", "t001"), runs=(run("r1", "failed"),)
    )
    assert_fails(
        one(h, "P4"),
        "t001 attempt 3 lost",
        "failed by the infrastructure, though its own code failed too: t000 attempt 1 failed",
    )


def test_p4_fails_on_a_failed_run_without_a_failed_attempt() -> None:
    assert_fails(
        check_p4(History(runs=(run("r1", "failed"),)), Bounds()),
        "run d/r1 ended failed: no attempt of its tasks failed; no task's own code failed",
    )


def test_p4_judges_the_last_attempt_of_a_task_not_an_earlier_own_failure() -> None:
    h = merged(
        code_failed("r1", "t000", 1),
        History(
            attempts=(att("r1", "t000", 2, "lost", CAP),), records=recs("r1", "t000", 2, "start")
        ),
        runs=(run("r1", "failed"),),
    )
    assert_fails(one(h, "P4"), "t000 attempt 2 lost", "no task's own code failed")


# -- the kept history, read back ------------------------------------------------------------


def test_a_kept_history_reads_back_for_the_checker(tmp_path: Path) -> None:
    h = History(
        events=(Event(1, t(0), "leader.elected", "master1:1:a", 1, committed_at=t(0.1)),),
        attempts=code_failed("r1", "t000").attempts,
        runs=(run("r1", "failed"), Run("d", "r2", "scheduled", "success", t(1), t(1), t(0), t(1))),
        records=code_failed("r1", "t000").records,
        requests=(Request(t(2), False, 503, "bad gateway"),),
        nodes={"worker1": "worker"},
        due={"d": (t(60), t(120))},
    )
    path = tmp_path / "history.json"
    _keep(h, path)
    assert load_history(path) == h
    assert one(load_history(path), "P4").status == Status.PASS


def test_an_older_kept_history_without_later_fields_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    attempt = {
        "dag_id": "d",
        "run_id": "r1",
        "task_id": "t000",
        "attempt": 1,
        "state": "lost",
        "epoch": 1,
        "worker_id": "worker1",
        "queued_at": str(t(0)),
        "started_at": None,
        "ended_at": None,
    }
    event = {"id": 1, "ts": str(t(0)), "kind": "leader.elected", "actor": "m", "epoch": 1}
    path.write_text(json.dumps({"events": [event], "attempts": [attempt], "runs": []}))
    h = load_history(path)
    assert h.attempts[0].reason == "" and h.attempts[0].queued_at == t(0)
    assert h.events[0].committed_at is None and h.faults == () and h.due == {}
