"""The repository against real metastores: fencing, claims, reports, uniqueness, history."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from haflow.core.attempt_end import Ending
from haflow.core.limits import TEXT_BYTES
from haflow.core.planner import Decisions, NewRun, TIChange
from haflow.core.states import AttemptState, RunState, TaskState
from haflow.errors import FencedOut, InvalidRequest, MetastoreError, NotFound
from haflow.metastore.records import AttemptRef, AttemptReport, DagRecord, TaskDef, result_of
from haflow.metastore.repository import Repository

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEFS = {
    "d": [
        TaskDef("a", retries=1, retry_delay_s=10.0, timeout_s=None, queue="default"),
        TaskDef("b", retries=0, retry_delay_s=0.0, timeout_s=60.0, queue="q2"),
    ]
}


def _dag(dag_id: str = "d") -> DagRecord:
    return DagRecord(dag_id, "/dags/d.py", None, None, False, 16, ["t"], "", "fp")


@pytest.fixture
def repo(engine: Engine) -> Repository:
    r = Repository(engine, cluster="c1", actor="sched-1")
    r.dags.sync([_dag()], [], T0)
    return r


def _started_run(repo: Repository, epoch: int) -> int:
    run = repo.runs.trigger("d", {"x": 1}, T0, run_id="r1")
    repo.scheduling.apply(Decisions(start_runs=[run.pk]), DEFS, epoch, T0)
    return run.pk


def _queue(repo: Repository, epoch: int, task_id: str = "a", attempt: int = 1) -> AttemptRef:
    ti = repo.history.task_instance("d", "r1", task_id)
    refs = repo.scheduling.apply(Decisions(to_queue=[(ti.id, attempt)]), DEFS, epoch, T0).refs
    assert len(refs) == 1
    return refs[0]


def test_epochs_only_grow_and_old_epoch_is_fenced(repo: Repository) -> None:
    e1 = repo.leadership.take("s1", "none", T0)
    e2 = repo.leadership.take("s2", "none", T0)
    assert e2 == e1 + 1
    assert repo.leadership.current() is not None and repo.leadership.current().holder == "s2"  # type: ignore[union-attr]
    run = repo.runs.trigger("d", {}, T0, run_id="r1")
    with pytest.raises(FencedOut):
        repo.scheduling.apply(Decisions(start_runs=[run.pk]), DEFS, e1, T0)
    # the fenced transaction changed nothing
    assert repo.runs.get("d", "r1").state == RunState.QUEUED
    assert repo.history.task_instances("d", "r1") == []
    repo.scheduling.apply(Decisions(start_runs=[run.pk]), DEFS, e2, T0)
    assert repo.runs.get("d", "r1").state == RunState.RUNNING
    assert [t.task_id for t in repo.history.task_instances("d", "r1")] == ["a", "b"]


def test_claim_is_exclusive_and_reports_are_conditional(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    claimed = repo.attempts.claim(ref, "w1", T0)
    assert claimed is not None and claimed.task_id == "a" and claimed.conf == {"x": 1}
    assert repo.attempts.claim(ref, "w2", T0) is None  # a duplicate message is dropped
    assert not repo.attempts.finish(ref.ti_id, 1, "w2", Ending.SUCCESS, "", T0)
    assert repo.attempts.finish(ref.ti_id, 1, "w1", Ending.SUCCESS, "", T0, log="hi\n")
    # the same report again (its first answer lost in a failover): accepted, changes nothing
    assert repo.attempts.finish(ref.ti_id, 1, "w1", Ending.SUCCESS, "", T0, log="hi\n")
    assert not repo.attempts.finish(ref.ti_id, 1, "w1", Ending.FAILED, "", T0)
    ti = repo.history.task_instance("d", "r1", "a")
    assert ti.state == TaskState.SUCCESS and ti.worker_id == "w1"
    assert repo.history.logs(ref.ti_id, 1) == "hi\n"
    kinds = [e.kind for e in repo.history.events()]
    assert kinds.count("attempt.claim_rejected") == 1
    assert kinds.count("report.rejected") == 2


def test_a_claim_must_name_the_epoch_the_attempt_was_last_published_under(
    repo: Repository,
) -> None:
    """A forged message naming another epoch claims nothing; after a new leader republishes
    the attempt, the old message is stale and only the new one claims it."""
    e1 = repo.leadership.take("s1", "none", T0)
    _started_run(repo, e1)
    ref = _queue(repo, e1)
    assert repo.attempts.claim(replace(ref, epoch=e1 + 7), "intruder", T0) is None
    e2 = repo.leadership.take("s2", "none", T0)
    (republished,) = repo.scheduling.republish_queued(e2, T0)
    assert republished.epoch == e2
    assert repo.attempts.claim(ref, "w-old-message", T0) is None
    claimed = repo.attempts.claim(republished, "w1", T0)
    assert claimed is not None
    assert repo.history.task_instance("d", "r1", "a").worker_id == "w1"
    rejected = [e for e in repo.history.events() if e.kind == "attempt.claim_rejected"]
    assert [e.actor for e in rejected] == ["intruder", "w-old-message"]


def test_failure_retries_then_fails(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    repo.attempts.claim(ref, "w1", T0)
    repo.attempts.finish(ref.ti_id, 1, "w1", Ending.FAILED, "exit 1", T0)
    ti = repo.history.task_instance("d", "r1", "a")
    assert (ti.state, ti.failures) == (TaskState.UP_FOR_RETRY, 1)
    ref2 = _queue(repo, epoch, attempt=2)
    repo.attempts.claim(ref2, "w1", T0)
    repo.attempts.finish(ref.ti_id, 2, "w1", Ending.FAILED, "exit 1", T0)
    assert repo.history.task_instance("d", "r1", "a").state == TaskState.FAILED
    assert [(a.attempt, a.state) for a in repo.history.attempts(ref.ti_id)] == [
        (1, "failed"),
        (2, "failed"),
    ]


def test_lost_attempt_does_not_use_a_retry(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch, task_id="b")  # b has no retries
    repo.attempts.claim(ref, "w1", T0)
    repo.attempts.finish(ref.ti_id, 1, "w1", Ending.ABANDONED, "worker stopped", T0)
    ti = repo.history.task_instance("d", "r1", "b")
    assert (ti.state, ti.failures) == (TaskState.UP_FOR_RETRY, 0)


def test_reclaimed_attempt_rejects_the_zombie(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    repo.attempts.claim(ref, "w1", T0)
    change = TIChange(
        ref.ti_id,
        1,
        TaskState.RUNNING,
        TaskState.UP_FOR_RETRY,
        failures=0,
        next_try_at=T0,
        attempt_state="lost",
        reason="worker silent",
    )
    repo.scheduling.apply(Decisions(changes=[change]), DEFS, epoch, T0)
    (reclaimed,) = repo.history.events(kinds=["attempt.reclaimed"])
    assert (reclaimed.epoch, reclaimed.task_id, reclaimed.attempt) == (epoch, "a", 1)
    assert "worker silent" in reclaimed.detail
    assert not repo.attempts.heartbeat(ref.ti_id, 1, "w1")
    assert not repo.attempts.finish(ref.ti_id, 1, "w1", Ending.SUCCESS, "", T0)
    assert repo.history.attempts(ref.ti_id)[0].state == AttemptState.LOST
    assert repo.history.task_instance("d", "r1", "a").state == TaskState.UP_FOR_RETRY


def test_a_batch_gives_each_claim_heartbeat_and_report_its_own_verdict(
    repo: Repository,
) -> None:
    """One transaction for many attempts (a worker process's threads share theirs) keeps
    every attempt's conditions: a second copy of a message or one naming another epoch
    claims nothing, a reclaimed attempt stops being ours, a zombie's report is rejected."""
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    a, b = _queue(repo, epoch, "a"), _queue(repo, epoch, "b")
    forged = replace(b, epoch=epoch + 7)
    claimed = repo.attempts.claim_many([a, forged, b, a], "w1", T0)
    assert [c.task_id if c else None for c in claimed] == ["a", None, "b", None]
    assert claimed[0] is not None and claimed[0].conf == {"x": 1}
    keys = [(a.ti_id, 1), (b.ti_id, 1)]
    assert repo.attempts.beat(keys, "w1", [(a.ti_id, 1, "a says\n", T0)]) == set(keys)
    assert repo.attempts.beat(keys, "w2") == set()  # not w2's
    lost = TIChange(
        b.ti_id,
        1,
        TaskState.RUNNING,
        TaskState.FAILED,
        failures=1,
        attempt_state="lost",
        reason="worker silent",
    )
    repo.scheduling.apply(Decisions(changes=[lost]), DEFS, epoch, T0)
    assert repo.attempts.beat(keys, "w1") == {(a.ti_id, 1)}
    done = AttemptReport(a.ti_id, 1, Ending.SUCCESS, "", T0, log="a ends\n")
    zombie = AttemptReport(b.ti_id, 1, Ending.SUCCESS, "", T0)
    again = replace(done, ending=Ending.FAILED, log="")
    assert repo.attempts.finish_many([done, zombie, again], "w1") == [True, False, False]
    assert repo.history.task_instance("d", "r1", "a").state == TaskState.SUCCESS
    assert repo.history.task_instance("d", "r1", "b").state == TaskState.FAILED
    assert repo.history.logs(a.ti_id, 1) == "a says\na ends\n"
    kinds = [e.kind for e in repo.history.events()]
    assert kinds.count("attempt.claimed") == 2
    assert kinds.count("attempt.claim_rejected") == 2
    assert kinds.count("report.rejected") == 2
    assert kinds.count("ti.success") == 1
    assert repo.attempts.claim_many([], "w1", T0) == []
    assert repo.attempts.finish_many([], "w1") == []


def test_attempt_numbers_are_unique(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    _queue(repo, epoch)
    ti = repo.history.task_instance("d", "r1", "a")
    with pytest.raises(MetastoreError):  # queueing attempt 1 again matches no row
        repo.scheduling.apply(Decisions(to_queue=[(ti.id, 1)]), DEFS, epoch, T0)
    assert len(repo.history.attempts(ti.id)) == 1


def test_scheduled_fire_is_created_once(repo: Repository) -> None:
    """An interval that has its run gets no second one, whether asked again later or twice in
    one transaction (a backfill's runs go the same way: test_backfill.py)."""
    epoch = repo.leadership.take("s1", "none", T0)
    fire = T0.replace(minute=5)
    new = NewRun("d", fire, fire - timedelta(minutes=5), fire)
    repo.scheduling.apply(Decisions(new_runs=[new]), DEFS, epoch, T0)
    repo.scheduling.apply(Decisions(new_runs=[new]), DEFS, epoch, T0)
    later = fire + timedelta(minutes=5)
    both = [new, NewRun("d", later, fire, later), NewRun("d", later, fire, later)]
    repo.scheduling.apply(Decisions(new_runs=both), DEFS, epoch, T0)
    runs = repo.runs.find("d")
    assert sorted(r.data_interval_end or T0 for r in runs) == [fire, later]
    assert repo.dags.get("d").last_fire_at == later
    created = repo.history.events(kinds=["run.created"])
    assert len(created) == 2


def test_manual_trigger_errors(repo: Repository) -> None:
    repo.runs.trigger("d", {}, T0, run_id="same")
    with pytest.raises(InvalidRequest, match="already has a run"):
        repo.runs.trigger("d", {}, T0, run_id="same")
    with pytest.raises(NotFound, match="no DAG 'nope'"):
        repo.runs.trigger("nope", {}, T0)


def test_a_conf_up_to_the_text_limit_is_stored_and_one_byte_more_refused(repo: Repository) -> None:
    at_limit = {"x": "a" * (TEXT_BYTES - 9)}  # {"x": "..."}: 9 bytes around the value
    assert (
        repo.runs.get("d", repo.runs.trigger("d", at_limit, T0, run_id="big").run_id).conf
        == at_limit
    )
    with pytest.raises(InvalidRequest, match=f"conf must be at most {TEXT_BYTES} bytes"):
        repo.runs.trigger("d", {"x": "a" * (TEXT_BYTES - 8)}, T0, run_id="over")


def test_sync_dags_marks_removed_inactive_and_keeps_pause(repo: Repository) -> None:
    repo.dags.set_paused("d", True, T0)
    repo.dags.sync([_dag("d"), _dag("e")], [("/dags/bad.py", 3, "SyntaxError: x")], T0)
    assert repo.dags.get("d").is_paused
    repo.dags.sync([_dag("e")], [], T0)
    assert [d.dag_id for d in repo.dags.all()] == ["e"]
    assert not repo.dags.get("d").is_active
    assert repo.dags.import_errors() == []


def test_sync_writes_each_dag_under_its_own_savepoint(repo: Repository) -> None:
    """A DAG whose row the metastore refuses (a number past its column, as a value past the
    parse checks would be) is named, and the other DAGs and the import errors are written."""
    bad = replace(_dag("bad"), max_active_runs=2**70)
    refused = repo.dags.sync([_dag("d"), bad, _dag("e")], [("/dags/x.py", 1, "SyntaxError: x")], T0)
    assert list(refused) == ["bad"] and "refused its row" in refused["bad"]
    assert [d.dag_id for d in repo.dags.all()] == ["d", "e"]
    assert [e.fileloc for e in repo.dags.import_errors()] == ["/dags/x.py"]
    assert repo.dags.sync([_dag("d"), _dag("bad")], [], T0) == {}  # fixed: written
    assert repo.dags.get("bad").max_active_runs == 16


def test_a_dag_structure_past_a_text_column_is_stored(repo: Repository) -> None:
    """A DAG of thousands of tasks: its structure's JSON is past MySQL's TEXT (65,535 bytes),
    which MariaDB stores since migration 0017 as PostgreSQL and SQLite always have."""
    tasks = {f"task_{i:05d}": {"upstream": [f"task_{i - 1:05d}"]} for i in range(3000)}
    big = replace(_dag("big"), structure={"tasks": tasks})
    assert len(json.dumps(big.structure)) > TEXT_BYTES
    assert repo.dags.sync([_dag("d"), big], [], T0) == {}
    assert len(repo.overview.dag_detail("big").structure["tasks"]) == 3000


def test_clear_reopens_a_finished_run(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    pk = _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    repo.attempts.claim(ref, "w1", T0)
    repo.attempts.finish(ref.ti_id, 1, "w1", Ending.SUCCESS, "", T0)
    repo.scheduling.apply(Decisions(finish_runs=[(pk, RunState.FAILED)]), DEFS, epoch, T0)
    assert repo.runs.clear("d", "r1", ["a"], T0) == ["a"]
    ti = repo.history.task_instance("d", "r1", "a")
    assert (ti.state, ti.attempt) == (TaskState.NONE, 1)
    assert repo.runs.get("d", "r1").state == RunState.RUNNING


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_a_claim_cut_off_mid_transaction_does_not_keep_the_attempt_locked(
    repo: Repository, db_url: str
) -> None:
    """A worker cut off (or frozen) inside its claim's transaction leaves the server idle in
    that transaction, holding the attempt's row lock. Workers' engines ask the server to end
    such a session (`idle_tx_timeout_s` = `[election] db_lock_timeout`), so the claim rolls
    back and another worker claims the attempt, instead of blocking behind the lock for as
    long as the server keeps a vanished client's session (hours, under default keepalives)."""
    import threading
    import time

    from sqlalchemy import update

    from haflow.metastore import models as m
    from haflow.metastore.engine import create_engine

    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    cut = create_engine(db_url, idle_tx_timeout_s=1.0)  # as a worker's engine is made
    conn = cut.connect()
    tx = conn.begin()
    conn.execute(  # the claim's first statement; then the worker vanishes
        update(m.TaskAttempt)
        .where(m.TaskAttempt.ti_id == ref.ti_id, m.TaskAttempt.attempt == ref.attempt)
        .values(state="running", worker_id="w1")
    )
    other = Repository(create_engine(db_url), cluster="c1", actor="w2")
    got: list[object] = []
    started = time.monotonic()
    t = threading.Thread(
        target=lambda: got.append(other.attempts.claim(ref, "w2", T0)), daemon=True
    )
    t.start()
    t.join(10)
    assert got and got[0] is not None, "the other worker's claim is still blocked"
    assert time.monotonic() - started < 6
    assert [(a.state, a.worker_id) for a in repo.history.attempts(ref.ti_id)] == [("running", "w2")]
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for an ended session
        tx.commit()
    conn.close()
    cut.dispose()
    other.engine.dispose()


def test_a_task_with_backoff_waits_twice_as_long_after_each_failure(
    repo: Repository, engine: Engine
) -> None:
    from sqlalchemy import select

    from haflow.metastore import models as m

    defs = {
        "d": [
            TaskDef(
                "a",
                retries=5,
                retry_delay_s=10.0,
                timeout_s=None,
                queue="default",
                retry_backoff_cap_s=25.0,
            )
        ]
    }
    epoch = repo.leadership.take("s1", "none", T0)
    run = repo.runs.trigger("d", {}, T0, run_id="r1")
    repo.scheduling.apply(Decisions(start_runs=[run.pk]), defs, epoch, T0)
    waits = []
    for attempt in (1, 2, 3):
        ti = repo.history.task_instance("d", "r1", "a")
        (ref,) = repo.scheduling.apply(Decisions(to_queue=[(ti.id, attempt)]), defs, epoch, T0).refs
        assert repo.attempts.claim(ref, "w1", T0) is not None
        assert repo.attempts.finish(ti.id, attempt, "w1", Ending.FAILED, "boom", T0)
        with engine.begin() as conn:
            due = conn.execute(
                select(m.TaskInstance.next_try_at).where(m.TaskInstance.id == ti.id)
            ).scalar_one()
        assert due is not None
        waits.append((due - T0).total_seconds())
    assert waits == [10.0, 20.0, 25.0]


def test_a_result_is_kept_with_the_accepted_report_alone_and_claims_read_the_runs(
    repo: Repository,
) -> None:
    """Attempt 1 of a is reclaimed, attempt 2 succeeds with a result; attempt 1's late report
    (with a result of its own) is rejected and leaves none: b's claim reads attempt 2's."""
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    first = _queue(repo, epoch)
    assert repo.attempts.claim(first, "w1", T0) is not None
    lost = TIChange(
        first.ti_id, 1, TaskState.RUNNING, TaskState.UP_FOR_RETRY, failures=0, next_try_at=T0,
        attempt_state="lost", reason="worker silent",
    )  # fmt: skip
    repo.scheduling.apply(Decisions(changes=[lost]), DEFS, epoch, T0)
    second = _queue(repo, epoch, attempt=2)
    claimed = repo.attempts.claim(second, "w2", T0)
    assert claimed is not None and claimed.results == {}
    assert repo.attempts.finish(first.ti_id, 2, "w2", Ending.SUCCESS, "", T0, result='"second"')
    assert not repo.attempts.finish(first.ti_id, 1, "w1", Ending.SUCCESS, "", T0, result='"1st"')
    a = repo.history.task_instance("d", "r1", "a")
    attempts = repo.history.attempts(a.id)
    assert [(x.attempt, x.result) for x in attempts] == [(1, None), (2, '"second"')]
    assert result_of(a, attempts) == '"second"'

    b = _queue(repo, epoch, task_id="b")
    claimed_b = repo.attempts.claim(b, "w3", T0)
    assert claimed_b is not None and claimed_b.results == {"a": '"second"'}
    assert repo.attempts.finish(b.ti_id, 1, "w3", Ending.FAILED, "exit 1", T0, result="[1]")
    b_row = repo.history.task_instance("d", "r1", "b")
    assert [x.result for x in repo.history.attempts(b_row.id)] == [None]  # failed: not kept

    repo.runs.clear("d", "r1", ["a", "b"], T0)  # a runs again: its old result is not a's now
    c = _queue(repo, epoch, task_id="b", attempt=2)
    claimed_c = repo.attempts.claim(c, "w3", T0)
    assert claimed_c is not None and claimed_c.results == {}


def test_running_attempts_of_named_runs_only(repo: Repository) -> None:
    """What the chaos drill aims its faults by: the attempts in flight of its own runs, never
    those of another run (a deployment's past)."""
    epoch = repo.leadership.take("s1", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    assert repo.attempts.claim(ref, "w1", T0) is not None
    assert [a.ti_id for a in repo.history.running_attempts([("d", "r1")])] == [ref.ti_id]
    assert [a.ti_id for a in repo.history.running_attempts()] == [ref.ti_id]
    assert repo.history.running_attempts([("d", "other"), ("e", "r1")]) == []
    assert repo.history.running_attempts([]) == []
