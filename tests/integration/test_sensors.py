"""Sensors through the real scheduler, local executor and metastore: a reschedule-mode sensor
gives its slot back between pokes (slots in use measured while it waits, against a poke-mode
sensor that holds it), times out, survives its worker's death mid-poke (in both modes), and
the file, SQL, HTTP and external-run sensors each wait
for the real thing."""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from haflow.core.clock import utcnow
from haflow.metastore.repository import Repository
from haflow.scheduler.service import SchedulerService
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=60.0)

SLOT_DAGS = """
from datetime import datetime
from haflow import DAG, BashTask, FileSensor

FOLDER = {folder!r}
START = datetime(2026, 1, 1)

with DAG("wait_resched", start_date=START):
    FileSensor("arrived", filepath=FOLDER + "/resched.flag", mode="reschedule",
               poke_interval=0.5, timeout=120) >> BashTask("after", bash_command="echo after")

with DAG("wait_poke", start_date=START):
    FileSensor("arrived", filepath=FOLDER + "/poke.flag", mode="poke", poke_interval=0.5,
               timeout=120)

with DAG("busy", start_date=START):
    BashTask("work", bash_command="sleep 1; echo worked")
"""


def scheduler(
    tmp_path: Path, db_url: str, dag_file: str, parallelism: int
) -> contextlib.AbstractContextManager[SchedulerService]:
    """A scheduler whose local executor has `parallelism` slots, one per process."""
    return scheduler_thread(
        tmp_path,
        db_url,
        {"sensing.py": dag_file},
        HAFLOW__CORE__PARALLELISM=str(parallelism),
        HAFLOW__CORE__ATTEMPTS_PER_PROCESS="1",
    )


class Sampler:
    """Samples, every 50 ms, the slots in use in the local executor's pool."""

    def __init__(self, service: SchedulerService, parallelism: int) -> None:
        self.service, self.parallelism = service, parallelism
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(self.parallelism - self.service.executor.open_slots())


def test_a_rescheduling_sensor_holds_no_slot_while_it_waits(tmp_path: Path, db_url: str) -> None:
    """One slot. While the reschedule-mode sensor waits, another DAG's task gets the slot and
    runs; the pool's slots in use fall to 0 between pokes. A poke-mode sensor, by contrast,
    holds the slot the whole time and the other task waits for it."""
    flags = tmp_path / "flags"
    flags.mkdir()
    dag_file = SLOT_DAGS.format(folder=str(flags))
    with scheduler(tmp_path, db_url, dag_file, parallelism=1) as service:
        repo = service.repo
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == 3)
        repo.runs.trigger("wait_resched", {}, utcnow(), run_id="r1")
        wait_for(
            "two pokes", lambda: _attempts(repo, "wait_resched", "r1")[:2] == ["rescheduled"] * 2
        )
        with Sampler(service, 1) as waiting:
            repo.runs.trigger("busy", {}, utcnow(), run_id="b1")
            wait_for(
                "busy to run while the sensor waits",
                lambda: _state(repo, "busy", "b1") == "success",
            )
            time.sleep(1.0)
        pokes_while_busy = _attempts(repo, "wait_resched", "r1")
        (flags / "resched.flag").write_text("here")
        wait_for(
            "the sensor's run to succeed", lambda: _state(repo, "wait_resched", "r1") == "success"
        )
        resched = repo.history.task_instance("wait_resched", "r1", "arrived")
        resched_attempts = _attempts(repo, "wait_resched", "r1")

        repo.runs.trigger("wait_poke", {}, utcnow(), run_id="p1")
        wait_for(
            "the poke-mode sensor to run", lambda: _ti_state(repo, "wait_poke", "p1") == "running"
        )
        with Sampler(service, 1) as holding:
            repo.runs.trigger("busy", {}, utcnow(), run_id="b2")
            time.sleep(3.0)
            busy_while_poking = _ti_state(repo, "busy", "b2", "work")
        (flags / "poke.flag").write_text("here")
        wait_for("busy to run after the sensor", lambda: _state(repo, "busy", "b2") == "success")
        poke_attempts = _attempts(repo, "wait_poke", "p1")
    # the slot was given back between pokes, and busy ran in it meanwhile
    assert max(waiting.samples) == 1 and 0 in waiting.samples
    assert len(pokes_while_busy) >= 3 and set(pokes_while_busy[:-1]) == {"rescheduled"}
    assert resched.state == "success" and resched.failures == 0
    assert set(resched_attempts[:-1]) == {"rescheduled"} and resched_attempts[-1] == "success"
    # poke mode: one attempt, the slot held throughout, busy kept waiting for it
    assert holding.samples and set(holding.samples) == {1}
    assert busy_while_poking not in ("running", "success")
    assert poke_attempts == ["success"]


KILL_DAGS = """
import os, signal, time
from datetime import datetime
from haflow import DAG, PythonSensor

FOLDER = {folder!r}

def poke_killing_first(name):
    def poke():
        pokes = os.path.join(FOLDER, name + ".pokes")
        with open(pokes, "a") as f:
            f.write(os.environ["HAFLOW_ATTEMPT"] + "\\n")
        if not os.path.exists(pokes + ".killed"):
            open(pokes + ".killed", "w").close()
            os.kill(int(os.environ["HAFLOW_WORKER_PID"]), signal.SIGKILL)
            time.sleep(30)
        return len(open(pokes).read().split()) >= 4
    return poke

for mode in ("reschedule", "poke"):
    with DAG("killed_" + mode, start_date=datetime(2026, 1, 1)):
        PythonSensor("arrived", python_callable=poke_killing_first(mode), mode=mode,
                     poke_interval=0.3, timeout=120, retries=0)
"""


@pytest.mark.parametrize("mode", ["reschedule", "poke"])
def test_a_sensor_whose_worker_dies_mid_poke_is_reclaimed_and_pokes_on(
    tmp_path: Path, db_url: str, mode: str
) -> None:
    """The first poke kills its worker process: the attempt is lost and reclaimed, a new one
    pokes on (no retry used: retries=0) and succeeds; no two attempts ran at once."""
    pokes = tmp_path / "pokes"
    pokes.mkdir()
    with scheduler_thread(
        tmp_path,
        db_url,
        {"killed.py": KILL_DAGS.format(folder=str(pokes))},
        HAFLOW__CORE__PARALLELISM="2",
        HAFLOW__CORE__ATTEMPTS_PER_PROCESS="1",
        # a heartbeat window of 5 s: one of 1.5 s (timeout 2, margin 0.5) was missed once by a
        # live attempt in a loaded CI (a second attempt lost, self-fenced after 2.6 s)
        HAFLOW__WORKER__HEARTBEAT_SEC="0.5",
        HAFLOW__WORKER__TIMEOUT="6",
        HAFLOW__WORKER__SELF_FENCE_MARGIN="1",
    ) as service:
        repo = service.repo
        dag_id = f"killed_{mode}"
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == 2)
        repo.runs.trigger(dag_id, {}, utcnow(), run_id="r1")
        wait_for(
            "the run to end",
            lambda: _state(repo, dag_id, "r1") in ("success", "failed"),
            timeout=60,
        )
        ti = repo.history.task_instance(dag_id, "r1", "arrived")
        attempts = repo.history.attempts(ti.id)
        state = _state(repo, dag_id, "r1")
    states = [a.state for a in attempts]
    assert state == "success", states
    assert states[0] == "lost" and states[-1] == "success", states
    if mode == "poke":
        assert states == ["lost", "success"]  # the new attempt poked until it held
    else:
        assert set(states[1:-1]) <= {"rescheduled"}, states
    poked = (pokes / f"{mode}.pokes").read_text().split()
    assert poked[0] == "1" and "1" not in poked[1:]  # the lost attempt poked once
    spans = sorted((a.started_at, a.ended_at) for a in attempts if a.started_at)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and end <= start  # one attempt at a time


def _state(repo: Repository, dag_id: str, run_id: str) -> str | None:
    try:
        return repo.runs.get(dag_id, run_id).state
    except Exception:
        return None


def _ti_state(repo: Repository, dag_id: str, run_id: str, task_id: str = "arrived") -> str | None:
    try:
        return repo.history.task_instance(dag_id, run_id, task_id).state
    except Exception:
        return None


def _attempts(repo: Repository, dag_id: str, run_id: str, task_id: str = "arrived") -> list[str]:
    try:
        ti = repo.history.task_instance(dag_id, run_id, task_id)
    except Exception:
        return []
    return [a.state for a in repo.history.attempts(ti.id)]


KIND_DAGS = """
from datetime import datetime
from haflow import DAG, BashTask, ExternalRunSensor, FileSensor, HttpSensor, SqlSensor

FOLDER, SQL, URL = {folder!r}, {sql!r}, {url!r}
START = datetime(2026, 1, 1)
QUICK = dict(mode="reschedule", poke_interval=0.5)

with DAG("wait_never", start_date=START):
    FileSensor("arrived", filepath=FOLDER + "/never.flag", timeout=2, **QUICK)

with DAG("wait_sql", start_date=START):
    SqlSensor("arrived", "select count(*) from ready", conn=SQL, timeout=60, **QUICK)

with DAG("wait_http", start_date=START):
    HttpSensor("arrived", url=URL, timeout=60, response_check=lambda body: "ready" in body, **QUICK)

DAILY = dict(schedule="@daily", start_date=START, end_date=datetime(2026, 1, 2), catchup=True)
with DAG("producer", **DAILY):
    BashTask("make", bash_command="until [ -e " + FOLDER + "/produce ]; do sleep 0.1; done")

with DAG("consumer", **DAILY):
    ExternalRunSensor("arrived", "producer", "make", timeout=60, **QUICK)

with DAG("failing_producer", **DAILY):
    BashTask("make", bash_command="sleep 1; exit 1")

with DAG("consumer_of_failure", **DAILY):
    ExternalRunSensor("arrived", "failing_producer", timeout=60, **QUICK)
"""


class Endpoint:
    """An HTTP endpoint that answers 503 until `ready` is set, then 200 "ready"."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                status, body = (200, b"ready") if outer.ready.is_set() else (503, b"wait")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def __enter__(self) -> Endpoint:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as e:
        yield e


def test_sensors_wait_for_files_rows_endpoints_and_other_runs_and_time_out(
    tmp_path: Path, db_url: str, endpoint: Endpoint
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as c:
        c.execute("create table ready (n int)")
    dag_file = KIND_DAGS.format(folder=str(flags), sql=f"sqlite:///{warehouse}", url=endpoint.url)
    with scheduler(tmp_path, db_url, dag_file, parallelism=3) as service:
        repo = service.repo
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == 7)
        for dag_id in ("wait_never", "wait_sql", "wait_http"):
            repo.runs.trigger(dag_id, {}, utcnow(), run_id="r1")
        wait_for("wait_never to time out", lambda: _state(repo, "wait_never", "r1") == "failed")
        never = repo.history.attempts(repo.history.task_instance("wait_never", "r1", "arrived").id)
        wait_for("sql and http to poke twice", lambda: all(
            _attempts(repo, d, "r1")[:2] == ["rescheduled"] * 2 for d in ("wait_sql", "wait_http")
        ))  # fmt: skip
        with sqlite3.connect(warehouse) as c:
            c.execute("insert into ready values (1)")
        endpoint.ready.set()
        for dag_id in ("wait_sql", "wait_http"):
            wait_for(f"{dag_id} to succeed", functools.partial(_succeeded, repo, dag_id))
        consumer = _scheduled(repo, "consumer")
        # the producer's task ends when told, once the consumer has poked in vain (a fixed
        # `sleep 2` there lost the race to a consumer started late in a loaded CI)
        wait_for(
            "the consumer to poke", lambda: "rescheduled" in _attempts(repo, "consumer", consumer)
        )
        (flags / "produce").touch()
        wait_for("consumer to succeed", lambda: _state(repo, "consumer", consumer) == "success")
        failing = _scheduled(repo, "consumer_of_failure")
        wait_for(
            "the failure's consumer to fail",
            lambda: _state(repo, "consumer_of_failure", failing) == "failed",
        )
        made = repo.history.task_instance("producer", consumer, "make")
        sensed = repo.history.attempts(
            repo.history.task_instance("consumer", consumer, "arrived").id
        )
        failed = repo.history.attempts(
            repo.history.task_instance("consumer_of_failure", failing, "arrived").id
        )
        log = repo.history.logs(
            repo.history.task_instance("consumer", consumer, "arrived").id, sensed[0].attempt
        )
    assert {a.state for a in never[:-1]} == {"rescheduled"} and never[-1].state == "failed"
    assert "sensor timed out" in never[-1].reason and "timeout of 2 s" in never[-1].reason
    assert endpoint.hits >= 3
    # the consumer's sensor waited for the producer's task of the same interval to succeed
    assert sensed[-1].state == "success" and sensed[0].state == "rescheduled"
    assert made.ended_at is not None and sensed[-1].ended_at is not None
    assert made.ended_at <= sensed[-1].ended_at
    assert "DAG 'producer' task 'make' for 2026-01-01T00:00:00+00:00" in log
    assert failed[-1].state == "failed" and "DAG 'failing_producer'" in failed[-1].reason
    assert "is failed" in failed[-1].reason


def _succeeded(repo: Repository, dag_id: str) -> bool:
    return _state(repo, dag_id, "r1") == "success"


def _scheduled(repo: Repository, dag_id: str) -> str:
    wait_for(f"{dag_id}'s scheduled run", lambda: len(repo.runs.find(dag_id)) == 1)
    return repo.runs.find(dag_id)[0].run_id
