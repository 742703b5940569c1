"""A small real cluster scraped by a real Prometheus: two `haflow scheduler` processes (ZooKeeper
election, Celery executor), one `haflow worker` on Redis, PostgreSQL, and Debian's prometheus
with the alert rules of dashboards/ loaded.

It evaluates every query of the Grafana dashboard through Prometheus's HTTP API (each must
answer with data), then kills the leader and watches the metrics follow the failover.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.web.credentials import hash_password, new_token, token_digest
from tests.daemons import start_haflow
from tests.integration.conftest import database_url, truncate_all, unavailable
from tests.ports import free_port
from tests.redisserver import redis_url
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "grafana" / "haflow-overview.json"
RULES = ROOT / "dashboards" / "prometheus" / "rules" / "haflow-alerts.yml"
REDIS_DB = 11
DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("pm_dag", start_date=datetime(2026, 1, 1)):
    BashTask("first", bash_command="echo one") >> BashTask("second", bash_command="echo two")
"""
# Grafana's variables, as Grafana would expand them for a short dashboard range
VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "1s"}


class Prometheus:
    def __init__(
        self, home: Path, targets: dict[str, list[int]], tokens: dict[str, Path] | None = None
    ) -> None:
        if shutil.which("prometheus") is None:
            unavailable("prometheus", FileNotFoundError("not installed (Debian: prometheus)"))
        self.port = free_port()
        shutil.copy(RULES, home / "alerts.yml")
        jobs: list[dict[str, Any]] = [
            {
                "job_name": job,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{p}" for p in ports],
                        "labels": {"cluster": "pm"},
                    }
                ],
            }
            for job, ports in targets.items()
        ]
        for job in jobs:  # the webserver's /metrics wants a login, as in dashboards/
            token = (tokens or {}).get(job["job_name"])
            if token is not None:
                job["authorization"] = {"type": "Bearer", "credentials_file": str(token)}
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "rule_files": ["alerts.yml"],
            "scrape_configs": jobs,
        }
        (home / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        with open(home / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={home / 'prometheus.yml'}",
                    f"--storage.tsdb.path={home / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("Prometheus to be ready", self._ready, 30)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with its error
            body = json.load(exc)
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.api("query", query=expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class Cluster:
    def __init__(self, home: Path, env: dict[str, str], repo: Repository) -> None:
        self.home = home
        self.env = env
        self.repo = repo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, *args: str, **env: str) -> None:
        self.procs[name] = start_haflow(
            *args, env={**self.env, **env}, log=self.home / f"{name}.log"
        )

    def scheduler(self, name: str) -> None:
        self.ports[name] = free_port()
        self.start(name, "scheduler", HAFLOW__SCHEDULER__METRICS_PORT=str(self.ports[name]))

    def webserver(self, name: str) -> None:
        self.ports[name] = free_port()
        port = str(self.ports[name])
        self.start(name, "webserver", "-w", "2", "-H", "127.0.0.1", "-p", port)

    def worker(self, name: str) -> None:
        self.ports[name] = free_port()
        self.start(
            name,
            "worker",
            "-c",
            "1",
            "-n",
            name,
            "--allow-root",
            HAFLOW__WORKER__METRICS_PORT=str(self.ports[name]),
        )

    def instance(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def name_of(self, sid: str) -> str:
        pid = int(sid.split(":")[1])
        return next(n for n, p in self.procs.items() if p.pid == pid)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.home.glob("*.log"))
        )


def _answers(prom: Prometheus, expr: str) -> bool:
    return bool(prom.query(expr))


def _redis() -> Iterator[None]:
    try:
        import redis

        client = redis.Redis.from_url(redis_url(REDIS_DB))
        client.flushdb()
    except Exception as exc:
        unavailable("Redis", exc)
    yield
    client.flushdb()
    client.close()


@pytest.fixture
def cluster(
    tmp_path: Path,
    zk_hosts: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    pg = database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))
    engine = create_engine(pg)
    truncate_all(engine)
    engine.dispose()
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "pm.py").write_text(DAG)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": pg,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CELERY__BROKER_URL": redis_url(REDIS_DB),
        "HAFLOW__SCHEDULER__CLUSTER": "pm",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        "HAFLOW__SCHEDULER__HEARTBEAT_SEC": "0.5",
        "HAFLOW__ELECTION__MODE": "zookeeper",
        "HAFLOW__ELECTION__ZK_HOSTS": zk_hosts,
        "HAFLOW__ELECTION__ZK_SESSION_TIMEOUT": "4",
        "HAFLOW__ELECTION__ZK_FALLBACK_AFTER": "4",
        "HAFLOW__ELECTION__DB_LOCK_TIMEOUT": "3",
        "HAFLOW__WORKER__HEARTBEAT_SEC": "0.5",
        "HAFLOW__WEBSERVER__SECRET_KEY": "pm-secret-key-" * 4,
    }
    repo = Repository(create_engine(pg), cluster="pm")
    repo.users.create("prometheus", hash_password("scrape-password"), "Viewer", utcnow())
    token = new_token()
    repo.users.add_token("prometheus", token_digest(token), "scrape", utcnow())
    (tmp_path / "metrics-token").write_text(token)
    c = Cluster(tmp_path, env, repo)
    for _ in _redis():
        try:
            c.scheduler("s1")
            c.scheduler("s2")
            c.worker("w1")
            c.webserver("web1")
            wait_for("a leader", lambda: bool(repo.history.events(kinds=["leader.elected"])), 30)
            wait_for("the worker", lambda: any(w["id"] == "w1" for w in repo.members.workers()), 30)
            yield c
        except BaseException:
            print(c.logs())
            raise
        finally:
            c.stop_all()
            repo.engine.dispose()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every panel, Grafana's variables expanded."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["type"] == "row" or panel["datasource"]["uid"] == "${datasource}"
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            found.append((panel["title"], expr))
    return found


def test_dashboard_queries_answer_and_metrics_follow_a_failover(
    cluster: Cluster, tmp_path: Path
) -> None:
    prom = Prometheus(
        tmp_path,
        {
            "haflow-scheduler": [cluster.ports["s1"], cluster.ports["s2"]],
            "haflow-worker": [cluster.ports["w1"]],
            "haflow-webserver": [cluster.ports["web1"]],
        },
        tokens={"haflow-webserver": tmp_path / "metrics-token"},
    )
    try:
        _check(cluster, prom)
    except BaseException:
        print((tmp_path / "prometheus.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        prom.stop()


def _check(c: Cluster, prom: Prometheus) -> None:
    wait_for("every target up", lambda: prom.scalar("sum(up)") == 4, 30)
    _run_dag(c)
    wait_for(
        "the worker's finished attempts in Prometheus",
        lambda: (
            (prom.scalar('sum(haflow_task_attempts_finished_total{state="success"})') or 0) >= 2
        ),
        20,
    )
    leader = c.name_of(c.repo.history.events(kinds=["leader.elected"])[-1].actor)
    standby = "s2" if leader == "s1" else "s1"
    assert prom.scalar("sum(haflow_scheduler_is_leader)") == 1
    assert prom.scalar(f'haflow_scheduler_is_leader{{instance="{c.instance(leader)}"}}') == 1
    elections = f'sum(haflow_leader_elections_total{{instance="{c.instance(standby)}"}})'
    assert prom.scalar(elections) == 0

    os.killpg(c.procs[leader].pid, signal.SIGKILL)
    wait_for(
        "the standby to lead in Prometheus",
        lambda: prom.scalar(f'haflow_scheduler_is_leader{{instance="{c.instance(standby)}"}}') == 1,
        30,
    )
    gone = f'up{{job="haflow-scheduler",instance="{c.instance(leader)}"}}'
    wait_for(
        "one leader again",
        lambda: prom.scalar("sum(haflow_scheduler_is_leader)") == 1 and prom.scalar(gone) == 0,
        30,
    )
    assert (prom.scalar(elections) or 0) >= 1
    takeovers = 'sum(increase(haflow_leader_elections_total{reason="takeover"}[2m]))'
    assert (prom.scalar(takeovers) or 0) > 0
    # observed when the takeover is done (after `elected`): maybe a scrape later than is_leader
    wait_for(
        "the failover time in Prometheus",
        lambda: prom.scalar("sum(haflow_failover_seconds_count)") == 1,
        30,
    )
    _run_dag(c)  # the new leader schedules, and exports the metastore gauges
    # the webserver's gunicorn workers add up in multiprocess mode: scrapes are counted too
    wait_for(
        "the webserver's request counts",
        lambda: (
            (prom.scalar('sum(haflow_http_requests_total{endpoint="metrics.metrics"})') or 0) >= 3
        ),
        30,
    )
    _every_panel_answers(prom)
    _rules_load(prom)


def _run_dag(c: Cluster) -> None:
    wait_for("the DAG to be parsed", lambda: bool(c.repo.dags.all()), 30)
    run_id = f"r{utcnow().timestamp()}"
    c.repo.runs.trigger("pm_dag", {}, utcnow(), run_id=run_id)
    wait_for(
        f"run {run_id} to succeed", lambda: c.repo.runs.get("pm_dag", run_id).state == "success", 30
    )


def _every_panel_answers(prom: Prometheus) -> None:
    """Each query must evaluate without error and return data (series appear within a few
    scrapes of the new leader; a query still empty after that fails)."""
    failures = []
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, expr in queries:
        body = prom.api("query", query=expr)
        if body["status"] != "success":
            failures.append(f"{title}: {expr}: error: {body.get('error')}")
            continue
        try:
            wait_for(expr, functools.partial(_answers, prom, expr), 5, 0.25)
        except AssertionError:
            failures.append(f"{title}: {expr}: no data")
    assert failures == [], "dashboard queries that fail:\n" + "\n".join(failures)


def _rules_load(prom: Prometheus) -> None:
    """Prometheus itself loaded and evaluates every alert rule without error."""
    expected = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])

    def healthy() -> bool:
        groups = prom.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return len(rules) == expected and all(r["health"] == "ok" for r in rules)

    wait_for("every alert rule evaluated", healthy, 15)
