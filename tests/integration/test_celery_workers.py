"""Two real `haflow worker` processes on a real broker (RabbitMQ, Redis) and PostgreSQL.

The scheduler runs in this process with the Celery executor. Bounds come from the event log
and from the tasks' own records, with [worker] timeout = 3 s as configured here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.scheduler.service import SchedulerService
from tests.daemons import HAFLOW, launch
from tests.integration.conftest import database_url, redis_db, truncate_all, unavailable
from tests.netproxy import Proxy
from tests.redisserver import own_server
from tests.waiting import wait_for

DAGS = """
import os
from datetime import datetime
from haflow.dag import DAG, BashTask, PythonTask

MARKS = {marks!r}

def mark(text):
    with open(MARKS, "a") as f:
        f.write(text + "\\n")

with DAG("cw_slow", start_date=datetime(2026, 1, 1)):
    BashTask("slow", bash_command=(
        'echo "start $HAFLOW_ATTEMPT $HAFLOW_WORKER_ID" >> ' + MARKS + '; sleep 3; '
        'echo "end $HAFLOW_ATTEMPT $HAFLOW_WORKER_ID" >> ' + MARKS
    ))

def once():
    mark("ran " + os.environ.get("HAFLOW_TASK_ID", "once"))

with DAG("cw_long", start_date=datetime(2026, 1, 1)):
    BashTask("ticker", queue="fenced", bash_command=(
        'for i in $(seq 160); do echo "tick $HAFLOW_ATTEMPT $HAFLOW_WORKER_ID $(date +%s.%N)" >> '
        + MARKS + '; sleep 0.05; done'
    ))

with DAG("cw_cut", start_date=datetime(2026, 1, 1)):
    BashTask("ticker", queue="fenced", bash_command=(
        # attempt 1 would tick for 30 s (it is cut off well before), a later one for about 9 s
        'n=160; [ "$HAFLOW_ATTEMPT" = 1 ] && n=600; for i in $(seq $n); do '
        'echo "tick $HAFLOW_ATTEMPT $HAFLOW_WORKER_ID $(date +%s.%N)" >> '
        + MARKS + '; sleep 0.05; done'
    ))

with DAG("cw_chain", start_date=datetime(2026, 1, 1), max_active_runs=3):
    prev = None
    for i in range(6):
        cur = BashTask(f"step{{i}}", bash_command="sleep 0.3")
        if prev is not None:
            prev >> cur
        prev = cur

with DAG("cw_once", start_date=datetime(2026, 1, 1)):
    BashTask("once", bash_command='sleep 1; echo "ran once" >> ' + MARKS)

def kill_my_worker():
    mark("killer")
    os.kill(int(os.environ["HAFLOW_WORKER_PID"]), 9)

with DAG("cw_killer", start_date=datetime(2026, 1, 1)):
    PythonTask("killer", python_callable=kill_my_worker)
"""


def _rabbit_vhost() -> Iterator[str]:
    vhost = f"haflow_test_{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60
        )
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        unavailable("RabbitMQ", exc)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def _redis_db() -> Iterator[str]:
    return redis_db(7)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from (_redis_db() if request.param == "redis" else _rabbit_vhost())


def restart_broker(url: str) -> None:
    """Stop the broker server and start it again: the test process's own Redis, or this
    machine's RabbitMQ (so that test runs alone: `serial`)."""
    if url.startswith("redis"):
        own_server().restart(down_s=1.0)  # the broker stays down a moment, as in a real restart
    else:
        subprocess.run(
            ["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            ["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120
        )


class Setup:
    def __init__(self, home: Path, env: dict[str, str], repo: Repository) -> None:
        self.home = home
        self.env = env
        self.repo = repo
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(self, name: str, queues: str = "default", **env: str) -> None:
        command = [
            *HAFLOW,
            "worker",
            "-c",
            "1",
            "-n",
            name,
            "-q",
            queues,
            "--allow-root",
        ]
        self.workers[name] = launch(command, {**self.env, **env}, self.home / f"{name}.log")

    def marks(self) -> list[str]:
        path = self.home / "marks.txt"
        return path.read_text().splitlines() if path.exists() else []

    def trigger(self, dag_id: str) -> str:
        run_id = f"r{uuid.uuid4().hex[:6]}"
        self.repo.runs.trigger(dag_id, {}, utcnow(), run_id=run_id)
        return run_id

    def finished(self, dag_id: str, run_id: str) -> bool:
        return self.repo.runs.get(dag_id, run_id).state in ("success", "failed")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.home.glob("*.log"))
        )


@pytest.fixture
def setup(
    tmp_path: Path,
    broker_url: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    yield from _setup(tmp_path, broker_url, database_urls, tmp_path_factory, {})


@pytest.fixture
def zk_setup(
    tmp_path: Path,
    zk_hosts: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    """Workers registered in ZooKeeper (2 s sessions) and a heartbeat timeout of 30 s, so only
    the ZooKeeper path can reclaim quickly."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=zk_hosts)
    zk.start(timeout=15)
    extra = {
        "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts,
        "HAFLOW__ELECTION__ZK_SESSION_TIMEOUT": "2",
        # self-fence after 3 s; reclaim after 12 s, or 4 s once the worker's node has vanished
        "HAFLOW__WORKER__TIMEOUT": "12",
        "HAFLOW__WORKER__SELF_FENCE_MARGIN": "9",
        "HAFLOW__WORKER__RECLAIM_MARGIN": "1",
    }
    try:
        for broker in _redis_db():
            for s in _setup(tmp_path, broker, database_urls, tmp_path_factory, extra):
                wait_for(
                    "both workers' ZooKeeper nodes",
                    lambda: sorted(zk.get_children("/haflow/default/workers")) == ["w1", "w2"],
                    15,
                )
                yield s
    finally:
        zk.stop()
        zk.close()


def _setup(
    tmp_path: Path,
    broker_url: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    extra: dict[str, str],
) -> Iterator[Setup]:
    pg = database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))
    engine = create_engine(pg)
    truncate_all(engine)
    engine.dispose()
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "cw.py").write_text(DAGS.format(marks=str(tmp_path / "marks.txt")))
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": pg,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CELERY__BROKER_URL": broker_url,
        "HAFLOW__ELECTION__MODE": "none",
        "HAFLOW__WORKER__TIMEOUT": "3",
        "HAFLOW__WORKER__SELF_FENCE_MARGIN": "1",
        "HAFLOW__WORKER__HEARTBEAT_SEC": "0.5",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        "HAFLOW__SCHEDULER__QUEUED_TIMEOUT": "10",
        **extra,
    }
    settings = load_settings(home=tmp_path, environ=env)
    service: SchedulerService = build_scheduler(settings)
    thread = threading.Thread(target=service.run, daemon=True)
    s = Setup(tmp_path, env, service.repo)
    thread.start()
    try:
        for name in ("w1", "w2"):
            s.start_worker(name)
        wait_for("the DAGs to be parsed", lambda: len(s.repo.dags.all()) == 6)
        wait_for("both workers to register", lambda: _alive(s.repo) == {"w1", "w2"})
        yield s
    except BaseException:
        print(s.logs())
        raise
    finally:
        for p in s.workers.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        service.stop_requested.set()
        thread.join(30)


def test_dead_worker_is_detected_by_its_zookeeper_session(zk_setup: Setup) -> None:
    s = zk_setup
    run_id = s.trigger("cw_slow")
    wait_for("attempt 1 to start", lambda: any(m.startswith("start 1") for m in s.marks()))
    victim = s.marks()[0].split()[2]
    killed_at = time.time()
    os.killpg(s.workers[victim].pid, signal.SIGKILL)
    wait_for("the run to finish", lambda: s.finished("cw_slow", run_id), 30)
    ti = s.repo.history.task_instance("cw_slow", run_id, "slow")
    first = s.repo.history.attempts(ti.id)[0]
    assert first.state == "lost"
    assert first.reason.startswith("worker's ZooKeeper session ended")
    reclaimed = next(e for e in s.repo.history.events(kinds=["ti.up_for_retry"]) if e.attempt == 1)
    took = (reclaimed.ts - datetime.fromtimestamp(killed_at).astimezone()).total_seconds()
    assert took < 10.0, f"reclaimed {took:.1f} s after the kill (heartbeat timeout is 12 s)"
    assert s.repo.runs.get("cw_slow", run_id).state == "success"


def _alive(repo: Repository) -> set[str]:
    return {w["id"] for w in repo.members.workers() if w["state"] == "alive"}


def test_partitioned_worker_stops_its_attempt_before_the_reclaimed_one_starts(
    setup: Setup,
) -> None:
    """Cut a worker off the metastore mid-task (a black-holing proxy, as a partition): it
    kills its own attempt (self-fencing) before the leader's reclaimed attempt starts on
    another worker, judged from the task's own ticks."""
    pg = make_url_parts(setup.env["HAFLOW__CORE__SQL_ALCHEMY_CONN"])
    proxy = Proxy(pg["host"], pg["port"])
    try:
        via_proxy = setup.env["HAFLOW__CORE__SQL_ALCHEMY_CONN"].replace(
            f"{pg['host']}:{pg['port']}", f"127.0.0.1:{proxy.port}"
        )
        setup.start_worker("cut", queues="fenced", HAFLOW__CORE__SQL_ALCHEMY_CONN=via_proxy)
        # attempt 1 of cw_cut ticks for 30 s: the cut (once the spare worker has registered,
        # which a loaded machine may take 10 s to do) comes well before it would end on its own
        run_id = setup.trigger("cw_cut")
        wait_for(
            "attempt 1 to tick", lambda: any(m.startswith("tick 1 cut") for m in setup.marks())
        )
        setup.start_worker("spare", queues="fenced")
        wait_for("the spare worker to register", lambda: "spare" in _alive(setup.repo))
        proxy.cut()
        wait_for("the run to finish", lambda: setup.finished("cw_cut", run_id), 40)
    finally:
        proxy.close()
    ticks = [m.split() for m in setup.marks() if m.startswith("tick")]
    first = [float(t[3]) for t in ticks if t[1] == "1"]
    second = [float(t[3]) for t in ticks if t[1] == "2"]
    assert {t[2] for t in ticks if t[1] == "1"} == {"cut"}
    assert {t[2] for t in ticks if t[1] == "2"} == {"spare"} and len(second) == 160
    assert len(first) < 600, "the cut-off attempt was never stopped"
    assert max(first) < min(second), (
        f"attempt 1 ticked until {max(first):.3f}, attempt 2 started at {min(second):.3f}"
    )
    assert setup.repo.runs.get("cw_cut", run_id).state == "success"


@pytest.mark.serial  # it restarts this machine's RabbitMQ, which other tests use meanwhile
def test_broker_restart_mid_run_every_run_completes(setup: Setup) -> None:
    runs = [setup.trigger("cw_chain") for _ in range(3)]
    wait_for(
        "the runs to be under way",
        lambda: (
            len(
                [
                    e
                    for e in setup.repo.history.events(kinds=["ti.success"])
                    if e.dag_id == "cw_chain"
                ]
            )
            >= 2
        ),
    )
    restart_broker(setup.env["HAFLOW__CELERY__BROKER_URL"])
    wait_for("every run to finish", lambda: all(setup.finished("cw_chain", r) for r in runs), 90)
    assert [setup.repo.runs.get("cw_chain", r).state for r in runs] == ["success"] * 3
    for r in runs:
        for ti in setup.repo.history.task_instances("cw_chain", r):
            assert [a.state for a in setup.repo.history.attempts(ti.id)][-1] == "success"


def make_url_parts(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {"host": u.host or "127.0.0.1", "port": u.port or 5432}


def test_worker_killed_mid_task_is_reclaimed_and_rerun_elsewhere(setup: Setup) -> None:
    run_id = setup.trigger("cw_slow")
    wait_for("attempt 1 to start", lambda: any(m.startswith("start 1") for m in setup.marks()))
    victim = setup.marks()[0].split()[2]
    killed_at = time.time()
    os.killpg(setup.workers[victim].pid, signal.SIGKILL)
    wait_for("the run to finish", lambda: setup.finished("cw_slow", run_id), 40)

    survivor = ({"w1", "w2"} - {victim}).pop()
    assert setup.marks() == [f"start 1 {victim}", f"start 2 {survivor}", f"end 2 {survivor}"]
    assert setup.repo.runs.get("cw_slow", run_id).state == "success"
    ti = setup.repo.history.task_instance("cw_slow", run_id, "slow")
    attempts = setup.repo.history.attempts(ti.id)
    assert [(a.attempt, a.state, a.worker_id) for a in attempts] == [
        (1, "lost", victim),
        (2, "success", survivor),
    ]
    reclaimed = [e for e in setup.repo.history.events(kinds=["ti.up_for_retry"]) if e.attempt == 1]
    took = (reclaimed[0].ts - datetime.fromtimestamp(killed_at).astimezone()).total_seconds()
    assert took <= 10.0, f"reclaimed {took:.1f} s after the kill"


def test_duplicate_message_runs_the_task_once(setup: Setup) -> None:
    from haflow.worker.celery_app import TASK_NAME

    run_id = setup.trigger("cw_once")
    queued: list[object] = []

    def attempt_queued() -> bool:
        queued[:] = [
            e for e in setup.repo.history.events(kinds=["ti.queued"]) if e.run_id == run_id
        ]
        return bool(queued)

    wait_for("the attempt to be queued", attempt_queued)
    ti = setup.repo.history.task_instance("cw_once", run_id, "once")
    app = _publisher(setup)
    app.send_task(TASK_NAME, args=[ti.id, 1, queued[0].epoch], queue="default")  # type: ignore[attr-defined]
    wait_for("the run to finish", lambda: setup.finished("cw_once", run_id))
    wait_for(
        "the duplicate to be rejected",
        lambda: any(
            e.run_id == run_id for e in setup.repo.history.events(kinds=["attempt.claim_rejected"])
        ),
        15,
    )
    app.close()
    assert setup.marks() == ["ran once"]
    assert [a.attempt for a in setup.repo.history.attempts(ti.id)] == [1]


def test_task_that_kills_its_worker_fails_at_the_loss_cap(setup: Setup) -> None:
    run_id = setup.trigger("cw_killer")
    wait_for("the run to finish", lambda: setup.finished("cw_killer", run_id), 90)
    ti = setup.repo.history.task_instance("cw_killer", run_id, "killer")
    assert ti.state == "failed"
    attempts = setup.repo.history.attempts(ti.id)
    assert [a.state for a in attempts] == ["lost", "lost", "lost"]
    assert "max_losses" in attempts[-1].reason
    assert setup.marks().count("killer") == 3


def _publisher(setup: Setup):  # type: ignore[no-untyped-def]
    from haflow.worker.celery_app import make_app

    return make_app(load_settings(home=setup.home, environ=setup.env))


def _cut_worker(s: Setup, *, zookeeper: bool, metastore: bool) -> tuple[str, list[list[str]]]:
    """Start worker `cut` behind proxies to ZooKeeper and the metastore and a `spare` one, run
    `cw_long` on `cut`, cut the chosen links once it ticks, and wait for the run's end.
    Returns the run id and the tasks' own ticks (attempt, worker, time)."""
    servers, _, chroot = s.env["HAFLOW__ELECTION__ZK_HOSTS"].partition("/")
    zk_host, _, zk_port = servers.split(",")[0].rpartition(":")
    pg = make_url_parts(s.env["HAFLOW__CORE__SQL_ALCHEMY_CONN"])
    zk_proxy, pg_proxy = Proxy(zk_host, int(zk_port)), Proxy(pg["host"], pg["port"])
    try:
        s.start_worker(
            "cut",
            queues="fenced",
            HAFLOW__CORE__SQL_ALCHEMY_CONN=s.env["HAFLOW__CORE__SQL_ALCHEMY_CONN"].replace(
                f"{pg['host']}:{pg['port']}", f"127.0.0.1:{pg_proxy.port}"
            ),
            HAFLOW__ELECTION__ZK_HOSTS=f"127.0.0.1:{zk_proxy.port}/{chroot}",
        )
        wait_for("the worker to register", lambda: "cut" in _alive(s.repo))
        run_id = s.trigger("cw_long")
        wait_for("attempt 1 to tick", lambda: any(m.startswith("tick 1 cut") for m in s.marks()))
        s.start_worker("spare", queues="fenced")
        wait_for("the spare worker to register", lambda: "spare" in _alive(s.repo))
        if zookeeper:
            zk_proxy.cut()
        if metastore:
            pg_proxy.cut()
        # up to: the reclaim (4 or 12 s), attempt 2 possibly handed to `cut` itself, whose claim
        # hangs on the black-holed metastore until the re-publish (queued_timeout, 10 s), 8 s
        try:
            wait_for("the run to finish", lambda: s.finished("cw_long", run_id), 60)
        except AssertionError:
            ti = s.repo.history.task_instance("cw_long", run_id, "ticker")
            print(
                s.repo.history.attempts(ti.id), s.repo.history.events(limit=60), s.logs(), sep="\n"
            )
            raise
    finally:
        zk_proxy.close()
        pg_proxy.close()
    return run_id, [m.split()[1:] for m in s.marks() if m.startswith("tick")]


def _no_overlap(ticks: list[list[str]]) -> None:
    first = [float(t[2]) for t in ticks if t[0] == "1"]
    second = [float(t[2]) for t in ticks if t[0] == "2"]
    assert len(first) < 160 and len(second) == 160
    assert max(first) < min(second), (
        f"attempt 1 ticked until {max(first):.3f}, attempt 2 started at {min(second):.3f}"
    )


def test_worker_cut_off_from_zookeeper_and_metastore_fences_before_the_reclaim(
    zk_setup: Setup,
) -> None:
    """Cut off from both: its node vanishes (session 2 s), so the leader reclaims once the
    heartbeat passes the self-fence point plus the margin (4 s), never sooner; the worker has
    stopped its attempt by then (3 s), judged from the task's own ticks."""
    run_id, ticks = _cut_worker(zk_setup, zookeeper=True, metastore=True)
    ti = zk_setup.repo.history.task_instance("cw_long", run_id, "ticker")
    assert zk_setup.repo.history.attempts(ti.id)[0].reason.startswith(
        "worker's ZooKeeper session ended"
    )
    _no_overlap(ticks)


def test_worker_cut_off_from_the_metastore_only_fences_before_the_full_timeout(
    zk_setup: Setup,
) -> None:
    """Cut off from the metastore only: its ZooKeeper node lives on, so no hint: the leader
    waits the full timeout (12 s); the worker stopped its attempt after 3 s of silence."""
    run_id, ticks = _cut_worker(zk_setup, zookeeper=False, metastore=True)
    ti = zk_setup.repo.history.task_instance("cw_long", run_id, "ticker")
    first = zk_setup.repo.history.attempts(ti.id)[0]
    assert (first.state, first.worker_id) == ("lost", "cut")
    assert first.reason.startswith("worker stopped heartbeating")
    _no_overlap(ticks)


def test_worker_cut_off_from_zookeeper_only_runs_its_attempt_to_success(zk_setup: Setup) -> None:
    """Cut off from ZooKeeper only: its node vanishes (the hint), but its heartbeats reach the
    metastore, so nothing is reclaimed and the attempt runs to the end on the cut-off worker."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=zk_setup.env["HAFLOW__ELECTION__ZK_HOSTS"])
    zk.start(timeout=15)
    seen: list[set[str]] = []  # every version of the workers' nodes, in order
    zk.ChildrenWatch("/haflow/default/workers", lambda children: seen.append(set(children)))
    try:
        run_id, ticks = _cut_worker(zk_setup, zookeeper=True, metastore=False)
    finally:
        zk.stop()
        zk.close()
    registered = next(i for i, nodes in enumerate(seen) if "cut" in nodes)
    assert any("cut" not in nodes for nodes in seen[registered:]), "its node never vanished"
    ti = zk_setup.repo.history.task_instance("cw_long", run_id, "ticker")
    assert [(a.attempt, a.state, a.worker_id) for a in zk_setup.repo.history.attempts(ti.id)] == [
        (1, "success", "cut")
    ]
    assert not [
        e for e in zk_setup.repo.history.events(kinds=["attempt.reclaimed"]) if e.run_id == run_id
    ]
    assert [t[1] for t in ticks] == ["cut"] * 160
    assert zk_setup.repo.runs.get("cw_long", run_id).state == "success"


def test_sigterm_drains_a_worker_its_running_attempt_finishes(setup: Setup) -> None:
    """Draining a worker (the runbook's SIGTERM): Celery's warm shutdown lets the running
    attempt end and be reported; nothing is reclaimed or run twice; the worker says stopped."""
    run_id = setup.trigger("cw_slow")
    wait_for("attempt 1 to start", lambda: any(m.startswith("start 1") for m in setup.marks()))
    name = setup.marks()[0].split()[2]
    worker = setup.workers[name]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, setup.logs()
    wait_for("the run to finish", lambda: setup.finished("cw_slow", run_id), 20)
    assert setup.marks() == [f"start 1 {name}", f"end 1 {name}"]
    ti = setup.repo.history.task_instance("cw_slow", run_id, "slow")
    assert [(a.attempt, a.state) for a in setup.repo.history.attempts(ti.id)] == [(1, "success")]
    rows = {w["id"]: w["state"] for w in setup.repo.members.workers()}
    assert rows[name] == "stopped"


@pytest.fixture
def quorum_setup(
    tmp_path: Path,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Setup, str]]:
    """RabbitMQ with [celery] queue_type = quorum, for the scheduler and both workers."""
    for broker in _rabbit_vhost():
        extra = {"HAFLOW__CELERY__QUEUE_TYPE": "quorum"}
        for s in _setup(tmp_path, broker, database_urls, tmp_path_factory, extra):
            yield s, broker.rsplit("/", 1)[1]


def test_quorum_queues_carry_the_attempts(quorum_setup: tuple[Setup, str]) -> None:
    """The queues haflow declares are quorum queues (replicated on a RabbitMQ cluster's nodes,
    here one node); attempts published to them run once, as on classic queues."""
    setup, vhost = quorum_setup
    run_id = setup.trigger("cw_once")
    wait_for("the run to finish", lambda: setup.finished("cw_once", run_id), 60)
    assert setup.repo.runs.get("cw_once", run_id).state == "success"
    assert setup.marks() == ["ran once"]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    types = dict(line.split()[:2] for line in listed.splitlines() if line.strip())
    assert types.get("default") == "quorum", listed
