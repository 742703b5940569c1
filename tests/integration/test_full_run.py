"""A full DAG run through the real scheduler and local executor, on each real metastore."""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from cryptography.fernet import Fernet

from haflow.assembly.scheduler import build_scheduler
from haflow.config import Settings, load_settings
from haflow.core.clearing import ClearScope
from haflow.core.clock import utcnow
from haflow.core.secrets import Connection
from haflow.metastore.crypto import Crypto
from haflow.metastore.records import result_of
from haflow.metastore.repository import Repository
from haflow.scheduler.service import SchedulerService
from tests.daemons import HAFLOW
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=45.0)
DAGS = 6  # in DAG_FILE

DAG_FILE = """
from datetime import datetime
from haflow.dag import DAG, BashTask, PythonTask, task

def add(x, y):
    print("sum", x + y)

with DAG("it_mixed", start_date=datetime(2026, 1, 1),
         default_args={"retries": 1, "retry_delay": 0}):
    a = BashTask("a", bash_command="echo a-$HAFLOW_ATTEMPT conf=$HAFLOW_CONF")
    flaky = BashTask("flaky", bash_command='echo try $HAFLOW_ATTEMPT; test "$HAFLOW_ATTEMPT" -ge 2')
    b = PythonTask("b", python_callable=add, op_kwargs={"x": 2, "y": 3})
    doomed = BashTask("doomed", bash_command="echo going down; exit 3", retries=0)
    on_fail = BashTask("on_fail", bash_command="echo handled", trigger_rule="one_failed")
    after = BashTask("after_doomed", bash_command="echo never")
    slow = BashTask("slow", bash_command="sleep 30", execution_timeout=1, retries=0)
    a >> flaky >> b
    doomed >> [on_fail, after]

def kill_my_worker():
    import os
    os.kill(int(os.environ["HAFLOW_WORKER_PID"]), 9)

with DAG("it_killer", start_date=datetime(2026, 1, 1)):
    PythonTask("killer", python_callable=kill_my_worker)

with DAG("it_clear", start_date=datetime(2026, 1, 1)):
    a = BashTask("a", bash_command='test "$HAFLOW_ATTEMPT" -ge 2', retries=0)
    a >> BashTask("b", bash_command="echo b") >> BashTask("c", bash_command="echo c")

from haflow import Param

def show(context):
    print("params", context["params"])

with DAG("it_params", start_date=datetime(2026, 1, 1),
         params={"n": Param(2, type="integer", minimum=1), "table": Param(type="string")}):
    PythonTask("show", python_callable=show) >> BashTask("echo", bash_command="echo $HAFLOW_PARAMS")

with DAG("it_follow", start_date=datetime(2026, 1, 1)):
    # 6 s: the follower (a process of its own, slow to start on a loaded machine) is there
    # for the first lines while the task still runs
    BashTask("ticker", bash_command="for i in 1 2 3 4; do echo tick-$i; sleep 1.5; done")

with DAG("it_ok", start_date=datetime(2026, 1, 1)):
    @task
    def first():
        print("first")

    @task
    def second():
        print("second")

    first() >> second()
"""


def make_settings(tmp_path: Path, db_url: str, **env: str) -> Settings:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "it_dags.py").write_text(DAG_FILE)
    environ = {
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__CORE__DAGS_FOLDER": str(dags),
        "HAFLOW__CORE__PARALLELISM": "3",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        "HAFLOW__WORKER__HEARTBEAT_SEC": "0.5",
        # a worker fences itself after 3 s without a heartbeat: more than a loaded machine
        # running the tests in parallel stalls one (at 1.5 s, attempts were fenced by the load)
        "HAFLOW__WORKER__TIMEOUT": "4",
        "HAFLOW__WORKER__SELF_FENCE_MARGIN": "1",
        **env,
    }
    return load_settings(home=tmp_path, environ=environ)


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[tuple[SchedulerService, Repository]]:
    service = build_scheduler(make_settings(tmp_path, db_url))
    thread = threading.Thread(target=service.run, name="scheduler", daemon=True)
    thread.start()
    try:
        yield service, service.repo
    finally:
        service.stop_requested.set()
        thread.join(30)
        assert not thread.is_alive(), "the scheduler did not stop within 30 s"


def _finished(repo: Repository, dag_id: str, run_id: str) -> bool:
    try:
        return repo.runs.get(dag_id, run_id).state in ("success", "failed")
    except Exception:
        return False


def test_mixed_dag_reaches_expected_states(
    running: tuple[SchedulerService, Repository],
) -> None:
    _, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    repo.runs.trigger("it_mixed", {"k": "v"}, utcnow(), run_id="r1")
    wait_for("run r1 to finish", lambda: _finished(repo, "it_mixed", "r1"))

    states = {
        t.task_id: (t.state, t.attempt) for t in repo.history.task_instances("it_mixed", "r1")
    }
    assert states == {
        "a": ("success", 1),
        "flaky": ("success", 2),
        "b": ("success", 1),
        "doomed": ("failed", 1),
        "on_fail": ("success", 1),
        "after_doomed": ("upstream_failed", 0),
        "slow": ("failed", 1),
    }
    assert repo.runs.get("it_mixed", "r1").state == "failed"
    by_task = {t.task_id: t for t in repo.history.task_instances("it_mixed", "r1")}
    assert repo.history.attempts(by_task["slow"].id)[0].state == "timed_out"
    assert repo.history.logs(by_task["a"].id, 1) == 'a-1 conf={"k": "v"}\n'
    assert "sum 5" in repo.history.logs(by_task["b"].id, 1)
    assert "going down" in repo.history.logs(by_task["doomed"].id, 1)

    events = repo.history.events(dag_id="it_mixed")
    claims = Counter((e.task_id, e.attempt) for e in events if e.kind == "attempt.claimed")
    assert claims and max(claims.values()) == 1, "an attempt was claimed twice"
    assert [e.attempt for e in events if e.kind == "ti.up_for_retry"] == [1]
    assert {e.epoch for e in events if e.kind == "ti.queued"} == {repo.leadership.current().epoch}  # type: ignore[union-attr]


def test_successful_run_and_clear(running: tuple[SchedulerService, Repository]) -> None:
    _, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    repo.runs.trigger("it_ok", {}, utcnow(), run_id="ok1")
    wait_for("run ok1 to finish", lambda: _finished(repo, "it_ok", "ok1"))
    assert repo.runs.get("it_ok", "ok1").state == "success"
    repo.runs.clear("it_ok", "ok1", ["second"], utcnow())
    wait_for("the cleared run to finish again", lambda: _finished(repo, "it_ok", "ok1"))
    second = repo.history.task_instance("it_ok", "ok1", "second")
    assert (second.state, second.attempt) == ("success", 2)


def test_task_killing_its_local_worker_leaves_the_scheduler_running(
    running: tuple[SchedulerService, Repository],
) -> None:
    service, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    repo.runs.trigger("it_killer", {}, utcnow(), run_id="k1")
    wait_for("run k1 to finish", lambda: _finished(repo, "it_killer", "k1"))
    ti = repo.history.task_instance("it_killer", "k1", "killer")
    attempts = repo.history.attempts(ti.id)
    assert ti.state == "failed" and [a.state for a in attempts] == ["lost"] * 3
    assert "max_losses" in attempts[-1].reason
    assert service.executor.replaced == 3  # type: ignore[attr-defined]
    repo.runs.trigger("it_ok", {}, utcnow(), run_id="after")
    wait_for("a run after the crashes", lambda: _finished(repo, "it_ok", "after"))
    assert repo.runs.get("it_ok", "after").state == "success"


def test_clearing_a_failed_task_with_its_downstream_runs_the_branch_again(
    running: tuple[SchedulerService, Repository],
) -> None:
    """a >> b >> c, a fails its first attempt: b and c end upstream_failed and the run fails.
    Cleared with its downstream, a, b and c run again and the run ends in success."""
    _, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    repo.runs.trigger("it_clear", {}, utcnow(), run_id="c1")
    wait_for("run c1 to finish", lambda: _finished(repo, "it_clear", "c1"))
    assert repo.runs.get("it_clear", "c1").state == "failed"
    states = {t.task_id: t.state for t in repo.history.task_instances("it_clear", "c1")}
    assert states == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed"}
    scope = ClearScope(downstream=True)
    assert repo.runs.clear("it_clear", "c1", ["a"], utcnow(), scope, dry_run=True) == [
        "a",
        "b",
        "c",
    ]
    assert repo.runs.get("it_clear", "c1").state == "failed"  # a dry run changes nothing
    assert repo.runs.clear("it_clear", "c1", ["a"], utcnow(), scope) == ["a", "b", "c"]
    wait_for("the cleared run to finish again", lambda: _finished(repo, "it_clear", "c1"))
    assert repo.runs.get("it_clear", "c1").state == "success"
    tis = {t.task_id: (t.state, t.attempt) for t in repo.history.task_instances("it_clear", "c1")}
    assert tis == {"a": ("success", 2), "b": ("success", 1), "c": ("success", 1)}


def test_the_cli_waits_for_a_run_and_follows_a_log_as_it_grows(
    running: tuple[SchedulerService, Repository], tmp_path: Path, db_url: str
) -> None:
    _, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
    }
    run = ["dags", "trigger", "it_follow", "--run-id", "f1", "--wait"]
    follow = ["tasks", "logs", "it_follow", "f1", "ticker", "--follow"]
    pipes = dict(env=env, stdout=PIPE, stderr=PIPE, text=True)
    with subprocess.Popen([*HAFLOW, *run], **pipes) as waiting:  # type: ignore[call-overload]
        wait_for("run f1 to exist", lambda: _exists(repo, "it_follow", "f1"))
        with subprocess.Popen([*HAFLOW, *follow], **pipes) as tail:  # type: ignore[call-overload]
            arrived = {}
            for line in tail.stdout:  # read as it comes
                arrived[line.strip()] = time.monotonic()
            ended = time.monotonic()
            tail_err = tail.stderr.read()
            assert tail.wait(30) == 0, tail_err
        out, err = waiting.communicate(timeout=60)
    assert list(arrived) == ["tick-1", "tick-2", "tick-3", "tick-4"]
    assert ended - arrived["tick-1"] >= 0.5  # printed while the task still ran
    assert "attempt 1 of ticker ended success" in tail_err
    assert waiting.returncode == 0, err
    assert "f1" in out and "success: 1 success" in err

    failing = ["dags", "trigger", "it_clear", "--run-id", "w2", "--wait"]
    done = subprocess.run([*HAFLOW, *failing], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 1, done.stderr
    assert "failed: a" in done.stderr


def _exists(repo: Repository, dag_id: str, run_id: str) -> bool:
    try:
        return bool(repo.runs.get(dag_id, run_id))
    except Exception:
        return False


EXAMPLES = Path(__file__).parents[2] / "haflow" / "example_dags"


MANUAL_EXAMPLES = {
    "example_hello": {},
    "example_taskflow": {},
    "example_trigger_rules": {},
    "example_params": {"rows": 42},
    "example_retries": {},
    "example_sensors": {},
    "example_variables": {},
}
SCHEDULED_EXAMPLES = {  # DAG id -> the runs its schedule makes at once (at least)
    "example_every_minute": 1,
    "example_once": 1,
    "example_every_6h": 1,
    "example_timezone": 4,
    "example_depends_on_past": 3,
}


# example_sensors drops its file at one path of the machine's temporary folder: the runs of this
# test (one per backend) go one after another, never in parallel test processes
@pytest.mark.serial
def test_every_example_runs_to_success_as_it_says(tmp_path: Path, db_url: str) -> None:
    """Each example DAG of haflow/example_dags (one per feature) on a real scheduler: the
    manual ones triggered, the scheduled ones creating their runs; every run succeeds, and
    each shows what its docstring says."""
    (Path(tempfile.gettempdir()) / "haflow-example-sensors" / "ready.flag").unlink(missing_ok=True)
    examples = {p.name: p.read_text() for p in EXAMPLES.glob("example_*.py")}
    every = {**MANUAL_EXAMPLES, **SCHEDULED_EXAMPLES}
    key = Fernet.generate_key().decode()
    with scheduler_thread(tmp_path, db_url, examples, HAFLOW__CORE__FERNET_KEY=key) as service:
        repo = service.repo
        secrets = Repository(repo.engine, crypto=Crypto(key))
        secrets.variables.set("greeting", "good morning", utcnow())
        api = "https://bot:s3cret-token@api.example.com"
        secrets.connections.add(Connection.from_uri("example_api", api), utcnow())
        wait_for("the examples to be parsed", lambda: len(repo.dags.all()) == len(every))
        for dag_id, conf in MANUAL_EXAMPLES.items():
            repo.runs.trigger(dag_id, conf, utcnow(), run_id="ex")
        for dag_id, runs in SCHEDULED_EXAMPLES.items():
            wait_for(f"{dag_id}'s runs", functools.partial(_runs_at_least, repo, dag_id, runs))
        wait_for("every example run to finish", lambda: _all_finished(repo, every), timeout=120)
        states = {d: sorted({r.state for r in repo.runs.find(d)}) for d in every}
        seen = {d: _tasks(repo, d, "ex") for d in MANUAL_EXAMPLES}
        timezone = sorted(
            (r.data_interval_start, r.data_interval_end) for r in repo.runs.find("example_timezone")
        )
        ordered = [
            repo.history.task_instance("example_depends_on_past", r.run_id, "load").started_at
            for r in sorted(repo.runs.find("example_depends_on_past"), key=lambda r: r.pk)
        ]
    assert states == {d: ["success"] for d in every}
    flow = seen["example_taskflow"]
    assert flow["total"]["result"] == "16" and flow["archive"]["result"] == '"archived"'
    assert "3 rows, total 16" in flow["report"]["log"]
    assert {t: v["state"] for t, v in seen["example_trigger_rules"].items()} == {
        "load": "success",
        "alert": "skipped",
        "publish": "success",
        "quiet": "success",
        "cleanup": "success",
        "audit": "success",
    }
    assert "loading 42 rows (delta)" in seen["example_params"]["load"]["log"]
    flaky = seen["example_retries"]["flaky"]["attempts"]
    assert [a.state for a in flaky] == ["failed", "failed", "success"]
    gaps = [(b.queued_at - a.ended_at).total_seconds() for a, b in itertools.pairwise(flaky)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0  # 1 s, then doubled
    assert "good morning, haflow" in seen["example_variables"]["greet"]["log"]
    called = seen["example_variables"]["call"]["log"]
    assert "as bot with password ***" in called and "s3cret-token" not in called
    sensed = [a.state for a in seen["example_sensors"]["arrived"]["attempts"]]
    assert sensed[-1] == "success" and "rescheduled" in sensed
    spring = [datetime(2026, 3, d, h, m, tzinfo=UTC) for d, h, m in
              ((27, 1, 30), (28, 1, 30), (29, 1, 0), (30, 0, 30), (31, 0, 30))]  # fmt: skip
    assert timezone == list(itertools.pairwise(spring))
    assert ordered == sorted(ordered, key=lambda t: t or datetime.max.replace(tzinfo=UTC))
    assert None not in ordered


def _runs_at_least(repo: Repository, dag_id: str, n: int) -> bool:
    return len(repo.runs.find(dag_id)) >= n


def _all_finished(repo: Repository, dag_ids: Iterable[str]) -> bool:
    return all(r.state in ("success", "failed") for d in dag_ids for r in repo.runs.find(d))


def _tasks(repo: Repository, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Each task instance's state, attempts, result and last log."""
    out = {}
    for ti in repo.history.task_instances(dag_id, run_id):
        attempts = repo.history.attempts(ti.id)
        out[ti.task_id] = {
            "state": ti.state,
            "attempts": attempts,
            "result": result_of(ti, attempts),
            "log": repo.history.logs(ti.id, ti.attempt) if ti.attempt else "",
        }
    return out


def test_params_are_checked_at_trigger_and_seen_by_the_tasks(
    running: tuple[SchedulerService, Repository], tmp_path: Path, db_url: str
) -> None:
    from haflow.core.params import InvalidParam

    _, repo = running
    wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == DAGS)
    with pytest.raises(InvalidParam, match="'table' is required"):
        repo.runs.trigger("it_params", {}, utcnow(), run_id="p0")
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
    bad = ["dags", "trigger", "it_params", "-c", '{"table": "t", "n": 0}']
    done = subprocess.run([*HAFLOW, *bad], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "param 'n' must be >= 1" in done.stderr
    assert [r.run_id for r in repo.runs.find("it_params")] == []  # nothing was created
    repo.runs.trigger("it_params", {"table": "sales"}, utcnow(), run_id="p1")
    wait_for("run p1 to finish", lambda: _finished(repo, "it_params", "p1"))
    assert repo.runs.get("it_params", "p1").state == "success"
    show = repo.history.task_instance("it_params", "p1", "show")
    assert "params {'n': 2, 'table': 'sales'}" in repo.history.logs(show.id, 1)
    echo = repo.history.task_instance("it_params", "p1", "echo")
    assert '{"n": 2, "table": "sales"}' in repo.history.logs(echo.id, 1)
