"""Three real `haflow scheduler` processes on a real ZooKeeper ensemble and PostgreSQL.

Every bound is judged from the event log's timestamps (never from the daemons' own output),
with the timeouts as configured here: ZooKeeper session 4 s, fallback after 4 s, database
lock dropped after 3 s of silence.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from haflow.metastore.engine import create_engine
from haflow.metastore.records import EventRow, TIRow
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW, start_haflow
from tests.integration.conftest import database_url, truncate_all
from tests.waiting import wait_for

SESSION_S = 4.0
DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("fo_dag", start_date=datetime(2026, 1, 1)):
    BashTask("hello", bash_command="echo hello")

from haflow import FileSensor

with DAG("fo_sensor", start_date=datetime(2026, 1, 1)):
    FileSensor("arrived", filepath=__file__ + ".flag", mode="reschedule", poke_interval=0.5,
               timeout=120)

with DAG("fo_minutely", schedule="* * * * *", start_date=datetime(2026, 1, 1), catchup=False):
    BashTask("tick", bash_command="sleep 0.5")
"""


@pytest.fixture
def pg_url(database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    url = database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))
    engine = create_engine(url)
    truncate_all(engine)
    engine.dispose()
    return url


class Cluster:
    """Scheduler processes of one cluster, and the metastore they share."""

    def __init__(self, home: Path, env: dict[str, str], repo: Repository) -> None:
        self.home = home
        self.env = env
        self.repo = repo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.procs[name] = start_haflow("scheduler", env=self.env, log=self.home / f"{name}.log")

    def pid_of(self, sid: str) -> int:
        return int(sid.split(":")[1])

    def name_of(self, sid: str) -> str:
        pid = self.pid_of(sid)
        return next(n for n, p in self.procs.items() if p.pid == pid)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def elections(self) -> list[EventRow]:
        return self.repo.history.events(kinds=["leader.elected"])

    def wait_leader(self, after_epoch: int = 0, timeout: float = 30.0) -> EventRow:
        found: list[EventRow] = []

        def elected() -> bool:
            found[:] = [e for e in self.elections() if (e.epoch or 0) > after_epoch]
            return bool(found)

        wait_for(f"a leader after epoch {after_epoch}", elected, timeout)
        return found[0]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.home.glob("*.log"))
        )


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, zk_hosts: str) -> Iterator[Cluster]:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "fo.py").write_text(DAG)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": pg_url,
        "HAFLOW__CORE__PARALLELISM": "1",
        "HAFLOW__SCHEDULER__CLUSTER": "fo",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        "HAFLOW__SCHEDULER__HEARTBEAT_SEC": "0.5",
        "HAFLOW__ELECTION__MODE": "zookeeper",
        "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts,
        "HAFLOW__ELECTION__ZK_SESSION_TIMEOUT": str(SESSION_S),
        "HAFLOW__ELECTION__ZK_FALLBACK_AFTER": str(SESSION_S),
        "HAFLOW__ELECTION__DB_LOCK_TIMEOUT": "3",
    }
    repo = Repository(create_engine(pg_url), cluster="fo")
    c = Cluster(tmp_path, env, repo)
    try:
        for name in ("s1", "s2", "s3"):
            c.start(name)
        c.wait_leader()
        wait_for("three live schedulers", lambda: _live(repo) == 3, 30)
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()
        repo.engine.dispose()


def _live(repo: Repository) -> int:
    return sum(1 for s in repo.members.schedulers() if s["state"] in ("leader", "standby"))


def _ts(when: float) -> datetime:
    return datetime.fromtimestamp(when).astimezone()


def _leader(c: Cluster) -> EventRow:
    return c.elections()[-1]


def test_kill_9_leader_a_standby_leads_within_5_s(cluster: Cluster) -> None:
    old = _leader(cluster)
    killed_at = time.time()
    os.kill(cluster.pid_of(old.actor), signal.SIGKILL)
    new = cluster.wait_leader(after_epoch=old.epoch or 0, timeout=15)
    assert new.actor != old.actor
    takeover = (new.ts - _ts(killed_at)).total_seconds()
    assert takeover <= 5.0, f"takeover took {takeover:.2f} s"
    _schedules(cluster)


def test_sigterm_leader_hands_over_within_1_s(cluster: Cluster) -> None:
    old = _leader(cluster)
    os.kill(cluster.pid_of(old.actor), signal.SIGTERM)
    new = cluster.wait_leader(after_epoch=old.epoch or 0, timeout=10)
    resigned = [
        e for e in cluster.repo.history.events(kinds=["leader.resigned"]) if e.epoch == old.epoch
    ]
    assert resigned, "the leader did not record its resignation"
    handover = (new.ts - resigned[0].ts).total_seconds()
    assert handover <= 1.0, f"handover took {handover:.2f} s"
    cluster.procs[cluster.name_of(old.actor)].wait(15)
    _schedules(cluster)


def test_paused_leader_is_fenced_when_it_resumes(cluster: Cluster) -> None:
    old = _leader(cluster)
    pid = cluster.pid_of(old.actor)
    os.kill(pid, signal.SIGSTOP)
    new = cluster.wait_leader(after_epoch=old.epoch or 0, timeout=SESSION_S + 15)
    os.kill(pid, signal.SIGCONT)

    def fenced() -> bool:
        return any(
            e.epoch == old.epoch and e.actor == old.actor
            for e in cluster.repo.history.events(kinds=["leader.fenced_out"])
        )

    wait_for("the resumed leader to be fenced out", fenced, 20)
    late = [
        e
        for e in cluster.repo.history.events()
        if e.epoch == old.epoch and e.ts > new.ts and e.kind != "leader.fenced_out"
    ]
    assert late == [], f"state changed under the old epoch after the takeover: {late}"
    _schedules(cluster)


def test_ensemble_down_then_back(cluster: Cluster, zk_ensemble) -> None:  # type: ignore[no-untyped-def]
    """The leader keeps leading on the database lock it holds while the ensemble is down (its
    mode turns `database`, no new epoch), and a run triggered meanwhile completes."""
    before = _leader(cluster)
    zk_ensemble.stop()
    try:
        wait_for(
            "the leader to go on in database mode",
            lambda: any(
                s["state"] == "leader" and s["elector_mode"] == "database"
                for s in cluster.repo.members.schedulers()
            ),
            20,
        )
        started = time.monotonic()
        _schedules(cluster)
        assert time.monotonic() - started <= 15.0
        assert _leader(cluster).epoch == before.epoch, "leadership changed hands needlessly"
    finally:
        zk_ensemble.start()
    wait_for("leadership to settle under ZooKeeper", lambda: _one_live_leader(cluster), 30)
    _no_overlapping_leaders(cluster)
    _schedules(cluster)


def _one_live_leader(c: Cluster) -> bool:
    """One leader, following ZooKeeper's order again (it may keep the epoch it took in
    fallback mode: when its place in the order allows, nothing needs to change hands)."""
    leaders = [s for s in c.repo.members.schedulers() if s["state"] == "leader"]
    return len(leaders) == 1 and leaders[0]["elector_mode"] == "zookeeper"


def _no_overlapping_leaders(c: Cluster) -> None:
    epochs = [e.epoch for e in c.elections() if e.epoch is not None]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)
    writes = [e for e in c.repo.history.events() if e.epoch is not None]
    for earlier, later in zip(c.elections(), c.elections()[1:], strict=False):
        stale = [
            w
            for w in writes
            if w.epoch == earlier.epoch
            and w.ts > later.ts
            and w.kind not in ("leader.fenced_out", "leader.resigned")
        ]
        assert stale == [], f"epoch {earlier.epoch} wrote after epoch {later.epoch} began"


def test_a_rescheduling_sensor_goes_on_under_the_next_leader(cluster: Cluster) -> None:
    """A reschedule-mode sensor pokes under one leader; the leader (with the local executor
    that ran its pokes) is killed; the next leader queues its next pokes, and it succeeds
    when its file appears. No attempt is claimed twice."""
    from haflow.core.clock import utcnow

    wait_for("the DAGs to be known", lambda: len(cluster.repo.dags.all()) == 3, 20)
    cluster.repo.runs.trigger("fo_sensor", {}, utcnow(), run_id="s1")

    def ti() -> TIRow:
        return cluster.repo.history.task_instance("fo_sensor", "s1", "arrived")

    wait_for("two pokes", lambda: _attempts(cluster, "fo_sensor", "s1") >= 3, 30)
    old = _leader(cluster)
    os.kill(cluster.pid_of(old.actor), signal.SIGKILL)
    new = cluster.wait_leader(after_epoch=old.epoch or 0, timeout=15)
    wait_for(
        "pokes under the new leader",
        lambda: any(a.epoch == new.epoch for a in cluster.repo.history.attempts(ti().id)),
        30,
    )
    (cluster.home / "dags" / "fo.py.flag").write_text("here")
    wait_for("the sensor to succeed", lambda: ti().state == "success", 30)
    attempts = cluster.repo.history.attempts(ti().id)
    assert attempts[-1].state == "success" and ti().failures == 0
    assert {a.epoch for a in attempts} >= {old.epoch, new.epoch}
    assert {a.state for a in attempts[:-1]} <= {"rescheduled", "lost"}
    claims = [
        (e.attempt, e.epoch)
        for e in cluster.repo.history.events(kinds=["attempt.claimed"], dag_id="fo_sensor")
    ]
    assert len(claims) == len(set(claims)), "an attempt was claimed twice"


def test_a_backfill_over_the_schedule_across_a_failover_makes_one_run_per_interval(
    cluster: Cluster,
) -> None:
    """A minutely DAG's schedule makes its runs while a backfill of the last 15 minutes (and
    the next 5, as they end) makes the others, 3 at a time; the leader is killed midway. Each
    interval gets exactly one run, and the backfill completes under the new leader."""
    from haflow.core.clock import utcnow
    from haflow.dag.schedule import backfill_intervals

    wait_for("the DAGs to be known", lambda: len(cluster.repo.dags.all()) == 3, 20)
    now = utcnow()
    first, last = now - timedelta(minutes=15), now + timedelta(minutes=5)
    dag = cluster.repo.overview.dag_detail("fo_minutely")
    ranged = backfill_intervals(
        dag.schedule, dag.timezone, dag.start_date, first, last, dag_id="fo_minutely", now=now
    )
    b = cluster.repo.backfills.create(
        "fo_minutely", first, last, len(ranged), now, max_active_runs=3
    )
    wait_for(
        "the backfill's first runs", lambda: cluster.repo.backfills.get(b.id).runs_created >= 4, 30
    )
    old = _leader(cluster)
    os.kill(cluster.pid_of(old.actor), signal.SIGKILL)
    new = cluster.wait_leader(after_epoch=old.epoch or 0, timeout=15)
    wait_for(
        "the backfill to be done", lambda: cluster.repo.backfills.get(b.id).state == "done", 90
    )
    done = cluster.repo.backfills.get(b.id)
    runs = cluster.repo.runs.find("fo_minutely", limit=1000)
    ends = sorted(r.data_interval_end for r in runs if r.data_interval_end is not None)
    assert len(ends) == len(set(ends)), "an interval has two runs"
    step = {y - x for x, y in itertools.pairwise(ends)}
    assert step == {timedelta(minutes=1)}, f"intervals missing between runs: {step}"
    assert ends[0] <= ranged[0][1]  # from the range's first interval on
    assert done.runs_created >= 4 and done.failed == 0
    created = cluster.repo.history.events(kinds=["run.created"], dag_id="fo_minutely")
    assert {e.epoch for e in created} >= {old.epoch, new.epoch}


def _attempts(c: Cluster, dag_id: str, run_id: str) -> int:
    """The task instances' attempts so far (0 before the run starts)."""
    return sum(t.attempt for t in c.repo.history.task_instances(dag_id, run_id))


def _schedules(c: Cluster) -> None:
    """The current leader really schedules: a manual run completes."""
    from haflow.core.clock import utcnow

    run_id = f"r{time.monotonic_ns()}"
    wait_for("the DAG to be known", lambda: bool(c.repo.dags.all()), 20)
    c.repo.runs.trigger("fo_dag", {}, utcnow(), run_id=run_id)
    wait_for(
        f"run {run_id} to succeed", lambda: c.repo.runs.get("fo_dag", run_id).state == "success", 30
    )


def test_status_and_liveness_probe(cluster: Cluster) -> None:
    def haflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HAFLOW, *args],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    status = haflow("scheduler", "status", "--output", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    leader = _leader(cluster)
    assert (report["leader"], report["epoch"]) == (leader.actor, leader.epoch)
    assert report["elector_mode"] == "zookeeper"
    assert sorted(s["role"] for s in report["schedulers"]) == ["leader", "standby", "standby"]
    assert haflow("jobs", "check").returncode == 0
    assert haflow("jobs", "check", "--hostname", "no-such-host").returncode == 1

    cluster.stop_all()
    wait_for(
        "the probe to report no live leader",
        lambda: haflow("jobs", "check", "--max-age", "2").returncode == 1,
        30,
    )
    assert haflow("scheduler", "status", "--max-age", "2").returncode == 1
