"""The leader's kept snapshot (`scheduler.view.LeaderView`) against real metastores: after any
mix of the leader's own writes, claims, heartbeats, reports and clears it equals a whole read,
while reading again only what may have changed; decisions planned before a clear are refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from haflow.core.attempt_end import Ending
from haflow.core.planner import Decisions, Limits, TIChange, plan
from haflow.core.snapshot import DagSpec, Snapshot, TaskSpec
from haflow.core.states import RunState, TaskState
from haflow.errors import ConcurrentChange
from haflow.metastore.records import AttemptRef, DagRecord, TaskDef
from haflow.metastore.repository import Repository
from haflow.scheduler.view import LeaderView

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TASKS = [f"t{i}" for i in range(6)]
DEFS = {"d": [TaskDef(t, retries=1, retry_delay_s=0.0, timeout_s=None, queue="q") for t in TASKS]}
SPECS = {"d": DagSpec("d", {t: TaskSpec(t) for t in TASKS}, max_active_runs=16)}


@pytest.fixture
def repo(engine: Engine) -> Repository:
    r = Repository(engine, cluster="c1", actor="sched-1")
    r.dags.sync([DagRecord("d", "/dags/d.py", None, None, False, 16, [], "", "fp")], [], T0)
    return r


def _picture(snap: Snapshot) -> dict[int, tuple[str, int, dict[str, tuple[object, ...]]]]:
    return {
        r.pk: (
            str(r.state),
            r.revision,
            {
                tid: (ti.state, ti.attempt, ti.worker_id, ti.heartbeat_at, ti.queued_at)
                for tid, ti in r.tis.items()
            },
        )
        for r in snap.runs
    }


def _start(repo: Repository, epoch: int, run_id: str) -> int:
    pk = repo.runs.trigger("d", {}, T0, run_id=run_id).pk
    repo.scheduling.apply(Decisions(start_runs=[pk]), DEFS, epoch, T0)
    return pk


def test_kept_view_equals_a_whole_read_through_random_changes(repo: Repository) -> None:
    rng = random.Random(7)
    epoch = repo.leadership.take("s1", "none", T0)
    view = LeaderView(repo)
    runs = {"r0": _start(repo, epoch, "r0")}
    claimed: dict[int, int] = {}  # ti id -> attempt running on w1
    queued: list[AttemptRef] = []
    now = T0
    for step in range(120):
        now += timedelta(seconds=1)
        snap = view.snapshot()[0]
        whole = LeaderView(repo).snapshot()[0]  # a view that holds nothing reads all
        assert _picture(snap) == _picture(whole), f"step {step}"
        action = rng.choice(["plan", "plan", "claim", "claim", "finish", "beat", "clear", "run"])
        if action == "plan":
            d = plan(SPECS, snap.runs, now, Limits(open_slots=3))
            if d:
                queued += repo.scheduling.apply(d, DEFS, epoch, now).refs
                view.touched(d)
        elif action == "claim" and queued:
            ref = queued.pop(rng.randrange(len(queued)))
            if repo.attempts.claim(ref, "w1", now) is not None:
                claimed[ref.ti_id] = ref.attempt
        elif action == "finish" and claimed:
            ti_id = rng.choice(sorted(claimed))
            ending = rng.choice([Ending.SUCCESS, Ending.FAILED])
            assert repo.attempts.finish(ti_id, claimed.pop(ti_id), "w1", ending, "", now)
        elif action == "beat" and claimed:
            ti_id = rng.choice(sorted(claimed))
            assert repo.attempts.heartbeat(ti_id, claimed[ti_id], "w1")
        elif action == "clear":
            run_id = rng.choice(sorted(runs))
            repo.runs.clear("d", run_id, [rng.choice(TASKS)], now)
        elif action == "run" and len(runs) < 4:
            run_id = f"r{len(runs)}"
            runs[run_id] = _start(repo, epoch, run_id)
    assert view.whole_reads < 40, "the view read runs whole far more often than they changed"


def test_a_tick_reads_only_what_left_flight(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    view = LeaderView(repo)
    _start(repo, epoch, "r0")
    snap = view.snapshot()[0]
    d = plan(SPECS, snap.runs, T0, Limits(open_slots=2))
    refs = repo.scheduling.apply(d, DEFS, epoch, T0).refs
    view.touched(d)
    view.snapshot()[0]
    for ref in refs:
        assert repo.attempts.claim(ref, "w1", T0) is not None
        assert repo.attempts.finish(ref.ti_id, ref.attempt, "w1", Ending.SUCCESS, "", T0)
    reads = view.whole_reads
    tis = view.snapshot()[0].runs[0].tis
    assert view.whole_reads == reads == 1  # the finishes were seen without reading r0 whole
    assert sorted(t for t, ti in tis.items() if ti.state is TaskState.SUCCESS) == ["t0", "t1"]


def test_decisions_planned_before_a_clear_are_refused(repo: Repository) -> None:
    epoch = repo.leadership.take("s1", "none", T0)
    pk = _start(repo, epoch, "r0")
    view = LeaderView(repo)
    snap = view.snapshot()[0]
    ti = snap.runs[0].tis["t0"]
    skip = TIChange(ti.id, 0, TaskState.NONE, TaskState.SKIPPED)
    stale = Decisions(changes=[skip], revisions={pk: snap.runs[0].revision})
    repo.scheduling.apply(
        Decisions(changes=[skip], revisions={pk: snap.runs[0].revision}), DEFS, epoch, T0
    )
    assert repo.runs.clear("d", "r0", ["t0"], T0) == ["t0"]
    with pytest.raises(ConcurrentChange):
        repo.scheduling.apply(stale, DEFS, epoch, T0)
    view.reset()
    again = view.snapshot()[0].runs[0]
    assert again.revision == snap.runs[0].revision + 1
    assert again.tis["t0"].state is TaskState.NONE
    assert repo.runs.get("d", "r0").state == RunState.RUNNING
