"""A real `haflow worker` (Celery on Redis, a real metastore): it answers no remote control
command unless told to, and when a background part dies it stops, naming the part, instead of
limping on (its metrics listener shut down inside it once the worker is ready). The worker's
own loop is Celery's, so its parts are watched by `haflow.service.Watchdog`, which stops the
worker (warm shutdown) and makes it exit non-zero with a line naming the part."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemons import launch, start_haflow, stop_group
from tests.ports import free_port
from tests.redisserver import redis_url
from tests.waiting import wait_for

# Runs the real `haflow worker` command; the only addition is a thread that, once the worker's
# watchdog runs, shuts the metrics listener down as if it had crashed.
LAUNCHER = """
import sys, threading, time
import haflow.assembly.worker as assembly

watchdogs = []


class Recorded(assembly.Watchdog):
    def start(self):
        super().start()
        watchdogs.append(self)


def kill_the_listener():
    while not watchdogs:
        time.sleep(0.05)
    time.sleep(1.0)  # the worker has run with its listener up
    part = next(p for p in watchdogs[0].parts if p.name.startswith("metrics listener"))
    print(f"test: shutting down {part.name}", flush=True)
    part._server.shutdown()


assembly.Watchdog = Recorded
threading.Thread(target=kill_the_listener, daemon=True).start()
from haflow.cli.main import main

sys.argv[0] = "haflow"
main()
"""


def _worker_env(home: Path, db_url: str, broker: str, **settings: str) -> dict[str, str]:
    """A Celery worker's environment on Redis database `broker` (emptied first)."""
    _redis(broker)
    (home / "dags").mkdir()
    return {
        **os.environ,
        "HAFLOW_HOME": str(home),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CELERY__BROKER_URL": broker,
        **settings,
    }


def _redis(url: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    except Exception as exc:
        from tests.integration.conftest import unavailable

        unavailable("Redis", exc)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_dead_metrics_listener_stops_the_celery_worker(db_url: str, tmp_path: Path) -> None:
    env = _worker_env(
        tmp_path,
        db_url,
        redis_url(8),
        HAFLOW__WORKER__METRICS_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "worker.log"
    args = ["worker", "-c", "1", "-n", "parts-worker", "--allow-root"]
    proc = launch([sys.executable, "-c", LAUNCHER, *args], env, log)
    try:
        rc = proc.wait(90)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        pytest.fail(f"the worker kept running with its metrics listener dead:\n{log.read_text()}")
    out = log.read_text()
    assert "test: shutting down metrics listener" in out, out
    assert rc != 0, out
    assert "metrics listener" in out and "died" in out, out


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("remote_control", [False, True], ids=["off", "on"])
def test_a_worker_answers_remote_control_only_when_told(
    db_url: str, tmp_path: Path, remote_control: bool
) -> None:
    """Anyone who can publish to the broker could otherwise shut every worker down. (On Redis,
    `auto` keeps it on: see `haflow.worker.celery_app.remote_control`.)"""
    from haflow.config import load_settings
    from haflow.worker.celery_app import make_app

    env = _worker_env(
        tmp_path,
        db_url,
        redis_url(9),
        HAFLOW__CELERY__REMOTE_CONTROL="on" if remote_control else "off",
    )
    log = tmp_path / "worker.log"
    proc = start_haflow("worker", "-c", "1", "-n", "rc-worker", "--allow-root", env=env, log=log)
    app = make_app(load_settings(home=tmp_path, environ=env))
    try:
        wait_for("the worker to be ready", lambda: "ready." in log.read_text(), timeout=60)
        replies = app.control.ping(timeout=2.0)
        assert bool(replies) is remote_control, (replies, log.read_text())
    finally:
        app.close()
        stop_group(proc)
