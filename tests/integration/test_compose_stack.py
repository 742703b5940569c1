"""The deploy kit run for real: the images built here (`make images`), the cluster of
deploy/docker-compose.yml brought up with the README's command (the local-images override), and
used as a user would, through haproxy:

1. every service comes up healthy (haflow-init exits 0), without Grafana (not packaged here);
2. a user logs in through haproxy and triggers a DAG from its page; the run succeeds on a worker;
3. `docker-compose kill` of the leader's master: the other master leads, and a run triggered
   through haproxy succeeds; Airflow's own client (`apache-airflow-client`) lists, triggers
   with conf, polls, reads task instances and a log, pauses and unpauses, clears and marks,
   through haproxy, on the one master left;
4. `haflow chaos kill WORKER --compose deploy/docker-compose.yml` while it runs a task: the
   attempt is reclaimed and retried on the other worker, and the run succeeds;
5. `docker-compose stop WORKER` mid-task: the worker drains (its stop grace period), the task
   ends on it, and the run succeeds;
6. every node started again, Prometheus has every target up;
7. a game day: the deployment started again with the drill override (deploy/compose.chaos.yml,
   as the cluster guide shows), `haflow chaos run worker-kill9 --compose ...` drills it and
   every property it judges holds;
8. `docker-compose down -v` leaves no container, volume or network of the project.

Without a Docker engine (scripts/docker-engine.sh starts one) the test is skipped, and fails
under CI=true.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import socket
import ssl
import subprocess
import threading
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import airflow_client.client as ac
import pytest
from airflow_client.client.api import dag_api, dag_run_api, task_instance_api
from airflow_client.client.model.clear_dag_run import ClearDagRun
from airflow_client.client.model.dag import DAG
from airflow_client.client.model.dag_run import DAGRun
from airflow_client.client.model.update_dag_run_state import UpdateDagRunState

from haflow.chaos.compose import PROJECT_LABEL
from haflow.chaos.docker import Docker
from tests.integration.conftest import docker_engine
from tests.integration.web_fixtures import csrf_of
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
FILES = ("deploy/docker-compose.yml", "deploy/compose.local.yml")
DRILL = "deploy/compose.chaos.yml"
UP = ["docker-compose", "-f", FILES[0], "-f", FILES[1], "up", "-d"]
"""The README's command, word for word (the project, ports and folders come from the
environment, as the compose file's knobs)."""
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAGS = """\
import socket
import time
from datetime import datetime

from haflow.dag import DAG, PythonTask


def work(seconds: float) -> str:
    time.sleep(seconds)
    return socket.gethostname()


for dag_id, seconds in (("e2e_quick", 0), ("e2e_slow", 12)):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             default_args={"retries": 0}):
        PythonTask("work", python_callable=work, op_kwargs={"seconds": seconds})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PUBLISHED = (
    "HAFLOW_HTTPS_PORT",
    "HAFLOW_HTTP_PORT",
    "HAFLOW_STATS_PORT",
    "HAFLOW_PROMETHEUS_PORT",
    "HAFLOW_RABBITMQ_UI_PORT",
)
"""The compose file's knobs of the host ports it publishes."""


def project_env(project: str, secrets: Path, drills: Path, **extra: str) -> dict[str, str]:
    """The environment of compose project `project` on this host: its secrets, its drill
    folder (<--state-root>/compose-<project>, as compose.chaos.yml says), a free port for each
    port it publishes, and `extra`."""
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "HAFLOW_CHAOS_DIR": str(drills / f"compose-{project}"),
        "HAFLOW_SECRETS_DIR": str(secrets),
        **{knob: str(_free_port()) for knob in PUBLISHED},
        **extra,
    }


def _run(argv: list[str], env: dict[str, str], timeout_s: float = 300) -> str:
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Stack:
    """The running compose project: its environment, and a browser-like client of haproxy."""

    def __init__(self, env: dict[str, str], secrets: Path, files: tuple[str, ...] = FILES) -> None:
        self.env = env
        self.files = files
        self.project = env["COMPOSE_PROJECT_NAME"]
        self.base = f"https://127.0.0.1:{env['HAFLOW_HTTPS_PORT']}"
        self.password = (secrets / "admin_password").read_text().strip()
        # The self-signed certificate make-secrets.sh made (for localhost and 127.0.0.1).
        self.tls = ssl.create_default_context(cafile=str(secrets / "tls.pem"))
        self.jar = http.cookiejar.CookieJar()
        self.browser = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.tls),
            urllib.request.HTTPCookieProcessor(self.jar),
        )

    @contextlib.contextmanager
    def running(self, up: list[str]) -> Iterator[Stack]:
        """The project started with `up` and healthy; removed with its volumes after."""
        try:
            _run(up, self.env, timeout_s=600)
            self.wait_healthy()
            yield self
        finally:
            with contextlib.suppress(Exception):
                self.compose("down", "-v", "--remove-orphans", timeout_s=300)

    @contextlib.contextmanager
    def reporting(self) -> Iterator[None]:
        """On a failure, what the services said (their states and log tails) is printed."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                print(f"--- states {self.states()}\n{self.logs()}")
            raise

    def compose(self, *args: str, timeout_s: float = 300) -> str:
        files = [w for f in self.files for w in ("-f", f)]
        return _run(["docker-compose", *files, *args], self.env, timeout_s)

    # -- the user's side, through haproxy --------------------------------------------------

    def page(self, path: str, form: dict[str, str] | None = None) -> str:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with self.browser.open(self.base + path, data=data, timeout=30) as resp:
            return str(resp.read().decode())

    def api(self, path: str, body: dict[str, Any] | None = None, method: str = "") -> Any:
        auth = b64encode(f"admin:{self.password}".encode()).decode()
        req = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method or ("POST" if body is not None else "GET"),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.tls, timeout=30) as resp:
            return json.loads(resp.read())

    def login(self) -> None:
        token = csrf_of(self.page("/login"))
        landing = self.page(
            "/login", {"username": "admin", "password": self.password, "csrf_token": token}
        )
        assert "e2e_quick" in landing, "the DAG list after logging in does not show e2e_quick"

    def trigger(self, dag_id: str, run_id: str) -> None:
        """Trigger from the DAG's page, as a user clicks it."""
        token = csrf_of(self.page(f"/dags/{dag_id}"))
        said = self.page(
            f"/dags/{dag_id}/trigger", {"csrf_token": token, "run_id": run_id, "conf": "{}"}
        )
        assert f"triggered {run_id}" in said, said[-2000:]

    def run_state(self, dag_id: str, run_id: str) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        return str(self.api(f"/dags/{dag_id}/dagRuns/{quoted}")["state"])

    def task(self, dag_id: str, run_id: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(run_id, safe="")
        found: dict[str, Any] = self.api(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/work")
        return found

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 120) -> dict[str, Any]:
        seen: dict[str, str] = {}

        def ended() -> bool:
            seen["state"] = _quietly(lambda: self.run_state(dag_id, run_id)) or ""
            return seen["state"] in ("success", "failed")

        wait_for(f"{run_id} to end", ended, timeout_s, interval=0.5)
        task = self.task(dag_id, run_id)
        assert seen["state"] == "success", f"{run_id} ended {seen}: {json.dumps(task, indent=1)}"
        return task

    def running_on(self, dag_id: str, run_id: str) -> str:
        """The worker whose attempt of the task is running (waited for)."""
        seen: dict[str, Any] = {}

        def running() -> bool:
            seen.update(_quietly(lambda: self.task(dag_id, run_id)) or {})
            return seen.get("state") == "running" and bool(seen.get("hostname"))

        wait_for(f"{run_id}'s task to run", running, 90, interval=0.5)
        return str(seen["hostname"])

    def leader(self) -> str:
        return str(self.api("/cluster")["leader"]).split(":", 1)[0]

    # -- the operator's side ------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """service -> `running (healthy)`, `exited (0)`, ... for every container."""
        out = {}
        docker = Docker()
        for d in docker.inspect(*self._ids()):
            s = d["State"]
            exited = s["Status"] == "exited"
            detail = str(s["ExitCode"]) if exited else (s.get("Health") or {}).get("Status")
            service = d["Config"]["Labels"]["com.docker.compose.service"]
            out[service] = f"{s['Status']} ({detail})" if detail else s["Status"]
        return out

    def _ids(self) -> list[str]:
        out = Docker().run("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={self.project}")
        return out.split()

    def wait_healthy(self, timeout_s: float = 300) -> None:
        def healthy() -> bool:
            states = self.states()
            init = states.pop("haflow-init", "")
            return init == "exited (0)" and all(s == "running (healthy)" for s in states.values())

        try:
            wait_for("every service healthy", healthy, timeout_s, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.states()}\n{self.logs()}") from None

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", timeout_s=60)[-40000:]

    def prometheus_targets(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.env['HAFLOW_PROMETHEUS_PORT']}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as resp:
            active = json.loads(resp.read())["data"]["activeTargets"]
        return {f"{t['labels']['job']} {t['labels']['instance']}": t["health"] for t in active}


def _quietly(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (OSError, ValueError, KeyError):  # a master going down mid-request, a 404 yet
        return None


def _leftovers(project: str) -> dict[str, list[str]]:
    docker = Docker()
    label = f"label={PROJECT_LABEL}={project}"
    return {
        kind: docker.run(*cmd, "--filter", label, "--format", field).split()
        for kind, cmd, field in (
            ("containers", ["ps", "-a"], "{{.Names}}"),
            ("volumes", ["volume", "ls"], "{{.Name}}"),
            ("networks", ["network", "ls"], "{{.Name}}"),
        )
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    docker_engine()
    # `make images`, as the README says; a second call is a cache hit of a few seconds.
    _run(["make", "images"], dict(os.environ), timeout_s=900)
    secrets, dags, drills = tmp_path / "secrets", tmp_path / "dags", tmp_path / "drills"
    _run(["sh", "deploy/make-secrets.sh", str(secrets)], dict(os.environ))
    dags.mkdir(mode=0o755)
    dags.chmod(0o755)  # the haflow user (uid 10001) reads it inside the masters
    (dags / "e2e.py").write_text(DAGS)
    project = f"haflowe2e{os.getpid()}"
    env = project_env(
        project,
        secrets,
        drills,  # step 7's
        HAFLOW_DAGS_DIR=str(dags),
        # A short drain, so step 5 ends in seconds rather than minutes.
        HAFLOW_WORKER_DRAIN_SECONDS="120",
    )
    with Stack(env, secrets).running(UP) as stack:
        yield stack


def test_compose_stack(stack: Stack) -> None:
    with stack.reporting():
        _steps(stack)


def _steps(stack: Stack) -> None:
    states = stack.states()
    assert "grafana" not in states, "the local stack starts without Grafana"
    assert set(states) >= {"zk1", "zk2", "zk3", "postgres", "rabbitmq", "haflow-init"}
    assert set(states) >= {"master1", "master2", "worker1", "worker2", "haproxy", "prometheus"}

    # 2. Log in through haproxy, trigger from the DAG's page, the run succeeds on a worker.
    wait_for("the DAGs parsed", lambda: _quietly(lambda: stack.api("/dags/e2e_quick")), 120, 1)
    stack.login()
    stack.trigger("e2e_quick", "r1")
    task = stack.wait_run("e2e_quick", "r1")
    assert task["hostname"] in ("worker1", "worker2")
    assert task["result"] in ("worker1", "worker2"), task  # the task's own host name

    # 3. Kill the leader's master: the other one leads; a run through haproxy succeeds.
    first = stack.leader()
    assert first in ("master1", "master2")
    stack.compose("kill", first)
    other = {"master1": "master2", "master2": "master1"}[first]
    wait_for(f"{other} to lead", lambda: _quietly(stack.leader) == other, 60, 0.5)
    stack.trigger("e2e_quick", "r2")
    stack.wait_run("e2e_quick", "r2")
    _airflow_client(stack)

    # 4. `haflow chaos kill` the worker running a task: reclaimed, retried elsewhere.
    stack.trigger("e2e_slow", "r3")
    victim = stack.running_on("e2e_slow", "r3")
    said = _run(
        [str(ROOT / ".venv/bin/haflow"), "chaos", "kill", victim, "--compose", FILES[0]],
        stack.env,
        timeout_s=60,
    )
    assert f"SIGKILL {victim}" in said
    task = stack.wait_run("e2e_slow", "r3", timeout_s=180)
    attempts = task["attempts"]
    assert attempts[0]["worker"] == victim, attempts
    assert attempts[-1]["worker"] != victim and attempts[-1]["state"] == "success", attempts
    assert len(attempts) >= 2 and attempts[0]["state"] != "success", attempts

    # 5. `docker-compose stop` the worker running a task: it drains, the task ends on it.
    stack.compose("start", first, victim)
    stack.wait_healthy(timeout_s=180)
    stack.trigger("e2e_slow", "r4")
    draining = stack.running_on("e2e_slow", "r4")
    stopper = threading.Thread(target=stack.compose, args=("stop", draining), daemon=True)
    stopper.start()
    task = stack.wait_run("e2e_slow", "r4", timeout_s=180)
    assert [a["worker"] for a in task["attempts"]] == [draining], task["attempts"]
    stopper.join(timeout=120)
    assert not stopper.is_alive(), f"{draining} did not stop after its drain"
    assert stack.states()[draining] == "exited (0)", stack.states()

    # 6. Everything started again: every Prometheus target is up.
    stack.compose("start", draining)
    stack.wait_healthy(timeout_s=180)
    wait_for(
        "every Prometheus target up",
        lambda: (t := _quietly(stack.prometheus_targets)) and set(t.values()) == {"up"},
        90,
        1,
    )
    assert len(stack.prometheus_targets()) == 6, stack.prometheus_targets()

    # 7. A game day: the drill override added to the running deployment, a scenario run.
    _game_day(stack)

    # 8. down -v leaves nothing of the project.
    stack.compose("down", "-v", timeout_s=300)
    assert _leftovers(stack.project) == {"containers": [], "volumes": [], "networks": []}


def _game_day(stack: Stack) -> None:
    """`haflow chaos run worker-kill9` on the deployment, restarted with the drill override."""
    stack.compose("-f", DRILL, "up", "-d")  # recreates the masters and workers only
    # no wait here: the drill waits for a leader, live workers and haproxy itself
    drills = Path(stack.env["HAFLOW_CHAOS_DIR"])
    composed = [w for f in (*FILES, DRILL) for w in ("--compose", f)]
    haflow = str(ROOT / ".venv/bin/haflow")
    said = _run(
        [haflow, "chaos", "run", "worker-kill9", *composed, "--state-root", str(drills.parent)],
        stack.env,
        timeout_s=400,
    )  # exit 0: every property holds
    for prop in ("P1", "P3", "P4", "P5"):
        assert f"{prop}   PASS" in said, said
    history = json.loads((drills / "history.json").read_text())
    assert {r["dag_id"] for r in history["runs"]} == {"chaos_long"}, "only the drill is judged"
    assert {r["node"] for r in history["records"]} <= {"worker1", "worker2"}, history["records"]
    assert history["records"], "the tasks recorded their executions"


def _airflow_client(stack: Stack) -> None:
    """Airflow's own client of its REST API v1, through haproxy's HTTPS, as a script written
    for Airflow would use the cluster (its models check every answer's shape)."""
    conf = ac.Configuration(host=f"{stack.base}/api/v1", username="admin", password=stack.password)
    conf.ssl_ca_cert = str(Path(stack.env["HAFLOW_SECRETS_DIR"]) / "tls.pem")
    with ac.ApiClient(conf) as api:
        assert "e2e_quick" in [d.dag_id for d in dag_api.DAGApi(api).get_dags().dags]
        runs = dag_run_api.DAGRunApi(api)
        runs.post_dag_run("e2e_quick", DAGRun(dag_run_id="by_airflow_client", conf={"n": 1}))

        def ended() -> bool:
            state = str(runs.get_dag_run("e2e_quick", "by_airflow_client").state)
            return state in ("success", "failed")

        wait_for("the client's run to end", ended, 120, interval=0.5)
        run = runs.get_dag_run("e2e_quick", "by_airflow_client")
        assert str(run.state) == "success" and run.conf == {"n": 1}
        tis = task_instance_api.TaskInstanceApi(api)
        (ti,) = tis.get_task_instances("e2e_quick", "by_airflow_client").task_instances
        assert ti.hostname in ("worker1", "worker2") and ti.try_number == 1
        log = tis.get_log("e2e_quick", "by_airflow_client", "work", 1, full_content=True)
        assert log.continuation_token
        dags = dag_api.DAGApi(api)  # pause and unpause, clear and run again, mark the run
        assert dags.patch_dag("e2e_quick", DAG(is_paused=True)).is_paused is True
        assert dags.patch_dag("e2e_quick", DAG(is_paused=False)).is_paused is False
        runs.clear_dag_run("e2e_quick", "by_airflow_client", ClearDagRun(dry_run=False))
        wait_for(
            "the cleared task's second try to end",
            lambda: (
                tis.get_task_instance("e2e_quick", "by_airflow_client", "work").try_number == 2
                and ended()
            ),
            120,
            interval=0.5,
        )
        marked = runs.update_dag_run_state(
            "e2e_quick", "by_airflow_client", UpdateDagRunState(state="failed")
        )
        assert str(marked.state) == "failed"
