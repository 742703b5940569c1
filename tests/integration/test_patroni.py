"""haflow on a metastore under Patroni: a real pair (containers of the deploy kit's Patroni image,
their primary elected in the test ZooKeeper ensemble, a synchronous standby), two real
`haflow scheduler`s running tasks on their local pools, connected by the libpq multi-host URL
with `target_session_attrs=read-write`, as docs/operations.md tells a deployment to.

A planned switchover in the middle of a run of 200 tasks: nothing the metastore acknowledged
before it is lost (runs, attempts, events), every task succeeds, every execution a task recorded
outside the database is one the metastore knows, and scheduling resumes within 15 s of the new
primary's promotion (judged from the event log's timestamps, on the metastore's own clock).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl
from sqlalchemy import text

from haflow.doctor.checks import check_replication
from haflow.doctor.probe import Problem
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.repository import Repository
from tests.daemons import start_haflow, stop_group
from tests.integration.conftest import ROOT, docker_engine, unavailable
from tests.patroni import Patroni, image_present
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

TASKS = 200
NAMESPACE = "/patroni"  # Patroni's path in the test's ZooKeeper chroot (tests/patroni.py)
RESUME_BOUND_S = 15.0
DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask

RECORD = 'echo "$HAFLOW_RUN_ID $HAFLOW_TASK_ID $HAFLOW_ATTEMPT {what}" >> {records}'

with DAG("many", start_date=datetime(2026, 1, 1)):
    for i in range({tasks}):
        BashTask(
            f"t{{i:03d}}",
            bash_command=RECORD.format(what="start") + " && sleep 0.3 && "
            + RECORD.format(what="end"),
        )

with DAG("one", start_date=datetime(2026, 1, 1)):
    BashTask("t", bash_command=RECORD.format(what="start") + " && " + RECORD.format(what="end"))
"""


@pytest.fixture
def patroni(tmp_path: Path, zk_hosts: str) -> Iterator[Patroni]:
    docker_engine()
    if not image_present():
        done = subprocess.run(
            ["make", "images"], cwd=ROOT, capture_output=True, timeout=900, check=False
        )
        if done.returncode != 0:
            unavailable("the image haflow-local/patroni (`make images`)", RuntimeError(done.stderr))
    # Patroni's namespace under a digest ACL, as haflow's own nodes are with [election]
    # zk_auth: the members log in with the same credentials (PATRONI_ZK_AUTH_FILE) to create
    # their nodes under it; without them they could not bootstrap.
    auth = f"haflow:{secrets.token_hex(8)}"
    user, password = auth.split(":")
    zk = KazooClient(hosts=zk_hosts, auth_data=[("digest", auth)])
    zk.start(timeout=15)
    zk.create(NAMESPACE, acl=[make_digest_acl(user, password, all=True)])
    pg = Patroni(tmp_path, zk_hosts, zk_auth=auth)
    try:
        outsider = KazooClient(hosts=zk_hosts)
        outsider.start(timeout=15)
        try:
            with pytest.raises(NoAuthError):
                outsider.create(f"{NAMESPACE}/intruder")
        finally:
            outsider.stop()
            outsider.close()
        pg.start("pg1")
        wait_for("pg1 to lead", lambda: pg.primary() == "pg1", 120, 0.5)
        pg.start("pg2")
        pg.wait_ready()
        yield pg
    except BaseException:
        print(pg.logs())
        raise
    finally:
        pg.remove()
        zk.delete(NAMESPACE, recursive=True)  # the chroot's cleanup cannot: it has no login
        zk.stop()
        zk.close()


def test_switchover_during_200_tasks_loses_nothing(
    patroni: Patroni, tmp_path: Path, zk_hosts: str
) -> None:
    engine = create_engine(patroni.url())
    migrate(engine)
    repo = Repository(engine, cluster="pt")
    records = tmp_path / "records.txt"
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "many.py").write_text(
        DAG.format(tasks=TASKS, records=records, what="{what}")
    )
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": patroni.url(),
        "HAFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "HAFLOW__CORE__PARALLELISM": "6",
        "HAFLOW__SCHEDULER__CLUSTER": "pt",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.2",
        "HAFLOW__ELECTION__MODE": "zookeeper",
        "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts,
    }
    schedulers = [start_haflow("scheduler", env=env, log=tmp_path / f"s{i}.log") for i in (1, 2)]
    try:
        _run_through_switchover(patroni, repo, records)
    except BaseException:
        for log in sorted(tmp_path.glob("s*.log")):
            print(f"--- {log.name}\n{log.read_text()[-6000:]}")
        print(patroni.logs())
        raise
    finally:
        for proc in schedulers:
            stop_group(proc)
        engine.dispose()


def test_doctor_names_the_primary_and_misses_a_lost_standby(patroni: Patroni) -> None:
    """`haflow doctor`'s replication check on the multi-host URL: OK while the synchronous
    standby streams; exit 25 (REPLICATION) once it is gone, naming the member not reachable."""
    engine = create_engine(patroni.url())
    try:
        ok = check_replication(patroni.url(), engine)
        assert ok.ok, ok
        primary = patroni.primary()
        assert primary is not None
        assert f"primary 127.0.0.1:{patroni.members[primary].pg_port}" in ok.finding.detail
        assert "streaming sync" in ok.finding.detail
        listed = patroni.patronictl(primary, "list")  # as docs/operations.md shows it
        assert all(name in listed for name in patroni.members) and "Leader" in listed, listed
        standby = "pg2" if primary == "pg1" else "pg1"
        patroni.kill(standby)
        wait_for(
            "doctor to miss the standby",
            lambda: check_replication(patroni.url(), engine).finding.problem is Problem.REPLICATION,
            30,
            0.5,
        )
        lost = check_replication(patroni.url(), engine).finding.detail
        assert f"not reachable: 127.0.0.1:{patroni.members[standby].pg_port}" in lost, lost
        assert Problem.REPLICATION.value == 25
    finally:
        engine.dispose()


def _run_through_switchover(patroni: Patroni, repo: Repository, records: Path) -> None:
    wait_for("the DAGs parsed", lambda: _has_dags(repo), 120, 0.5)
    repo.runs.trigger("many", {}, datetime.now(UTC), run_id="before")
    wait_for(f"a quarter of {TASKS} tasks done", lambda: _done(repo) >= TASKS // 4, 180, 0.2)

    acknowledged = _snapshot(repo)
    old = patroni.primary()
    new = "pg2" if old == "pg1" else "pg1"
    asked_at = time.time()
    patroni.switchover(new)
    promoted_at = patroni.wait_writable(new)
    assert patroni.primary() == new, patroni.view()
    print(f"switchover to {new}: it accepted writes {promoted_at - asked_at:.2f} s after asked")

    wait_for(f"all {TASKS} tasks to end", lambda: _ended(repo) == TASKS, 240, 0.5)
    repo.runs.trigger("one", {}, datetime.now(UTC), run_id="after")  # schedules on
    wait_for(
        "the second run to end",
        lambda: _run_state(repo, "after") in ("success", "failed"),
        240,
        0.5,
    )

    # Nothing acknowledged before the switchover is lost; no ended attempt changed.
    after = _snapshot(repo)
    assert acknowledged.events <= after.events, "events acknowledged before are gone"
    assert acknowledged.runs <= after.runs
    assert acknowledged.attempts.keys() <= after.attempts.keys(), "attempts are gone"
    for key, state in acknowledged.attempts.items():
        if state not in ("queued", "running"):
            assert after.attempts[key] == state, (key, state, after.attempts[key])

    # Every task of both runs succeeded.
    assert _ti_states(repo, "before") == {"success": TASKS}
    assert _ti_states(repo, "after") == {"success": 1}
    assert _run_state(repo, "before") == _run_state(repo, "after") == "success"

    # Every execution the tasks recorded (outside the database) is an attempt it knows.
    lines = [line.split() for line in records.read_text().splitlines()]
    recorded = {(run, task, int(attempt)) for run, task, attempt, _ in lines}
    assert recorded <= after.attempts.keys(), sorted(recorded - after.attempts.keys())[:10]
    ends = {(r, t, int(a)) for r, t, a, what in lines if what == "end"}
    successes = {key for key, state in after.attempts.items() if state == "success"}
    assert successes <= ends, sorted(successes - ends)[:10]

    # Scheduling resumed within the bound of the new primary's promotion.
    queued = repo.history.events(kinds=["ti.queued"])
    resumed = min(e.ts.timestamp() for e in queued if e.ts.timestamp() > promoted_at)
    gap = resumed - promoted_at
    print(f"promotion of {new} at {promoted_at:.3f}; first task queued {gap:.2f} s after")
    assert gap <= RESUME_BOUND_S, f"scheduling resumed {gap:.2f} s after the promotion"


def _has_dags(repo: Repository) -> bool:
    return _count(repo, "SELECT count(*) FROM dag WHERE dag_id IN ('many', 'one')") == 2


def _count(repo: Repository, sql: str) -> int:
    try:
        with repo.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:  # the metastore between primaries
        return -1


def _done(repo: Repository) -> int:
    return _count(repo, "SELECT count(*) FROM task_instance WHERE state = 'success'")


def _ended(repo: Repository) -> int:
    return _count(repo, "SELECT count(*) FROM task_instance WHERE state IN ('success', 'failed')")


def _run_state(repo: Repository, run_id: str) -> str:
    with repo.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT state FROM dag_run WHERE run_id = :r"),
                {"r": run_id},
            ).scalar()
        )


def _ti_states(repo: Repository, run_id: str) -> dict[str, int]:
    with repo.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ti.state, count(*) FROM task_instance ti JOIN dag_run r"
                " ON r.id = ti.run_pk WHERE r.run_id = :r GROUP BY ti.state"
            ),
            {"r": run_id},
        ).all()
    return {str(state): int(n) for state, n in rows}


@dataclass(frozen=True)
class Snapshot:
    """What the metastore holds: event ids, run ids, (run, task, attempt) -> attempt state."""

    events: set[int]
    runs: set[str]
    attempts: dict[tuple[str, str, int], str]


def _snapshot(repo: Repository) -> Snapshot:
    with repo.engine.connect() as conn:
        events = {int(row[0]) for row in conn.execute(text("SELECT id FROM event_log"))}
        runs = {str(row[0]) for row in conn.execute(text("SELECT run_id FROM dag_run"))}
        attempts = {
            (str(run_id), str(task_id), int(attempt)): str(state)
            for run_id, task_id, attempt, state in conn.execute(
                text(
                    "SELECT r.run_id, ti.task_id, a.attempt, a.state FROM task_attempt a"
                    " JOIN task_instance ti ON ti.id = a.ti_id"
                    " JOIN dag_run r ON r.id = ti.run_pk"
                )
            )
        }
    return Snapshot(events, runs, attempts)
