"""`haflow doctor` against real failures: each gives its own message and exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from haflow.doctor.probe import Problem
from haflow.metastore.engine import create_engine
from tests.integration.conftest import PG_ADMIN, database_url, unavailable
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, so it can be stopped, frozen or given a password."""

    def __init__(self, password: str = "") -> None:
        self.port = free_port()
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        if password:
            args += ["--requirepass", password]
        try:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            unavailable("redis-server", exc)
        wait_for("the private Redis to listen", self._listening, 15)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def pg(database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))


def doctor(tmp_path: Path, db: str, broker: str, **extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "dags").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CELERY__BROKER_URL": broker,
        "HAFLOW__WEBSERVER__SECRET_KEY": "s3cret",
        "HAFLOW__CORE__FERNET_KEY": "k3y",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "haflow.cli.main", "doctor", "--allow-root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    r = PrivateRedis()
    yield r
    r.close()


def test_healthy_node_passes(tmp_path: Path, pg: str, redis: PrivateRedis) -> None:
    out = doctor(tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all checks passed" in out.stdout


def test_frozen_broker_times_out(tmp_path: Path, pg: str, redis: PrivateRedis) -> None:
    redis.proc.send_signal(signal.SIGSTOP)  # a stopped process: accepts, never answers
    out = doctor(tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0")
    assert out.returncode == Problem.TIMEOUT.value, out.stdout
    assert "FAIL broker" in out.stdout and "did not answer" in out.stdout


def test_closed_port_is_refused(tmp_path: Path, pg: str) -> None:
    out = doctor(tmp_path, pg, f"redis://127.0.0.1:{free_port()}/0")
    assert out.returncode == Problem.REFUSED.value, out.stdout
    assert "refuses connections" in out.stdout and "points at this node" in out.stdout


def test_unresolvable_host(tmp_path: Path, pg: str) -> None:
    out = doctor(tmp_path, pg, "amqp://guest:guest@no-such-broker.invalid:5672//")
    assert out.returncode == Problem.DNS.value, out.stdout
    assert "'no-such-broker.invalid' does not resolve" in out.stdout


def test_wrong_password(tmp_path: Path, pg: str) -> None:
    locked = PrivateRedis(password="right")
    try:
        out = doctor(tmp_path, pg, f"redis://:wrong@127.0.0.1:{locked.port}/0")
    finally:
        locked.close()
    assert out.returncode == Problem.AUTH.value, out.stdout
    assert "refused the credentials" in out.stdout


def test_wrong_password_on_rabbitmq(tmp_path: Path, pg: str) -> None:
    out = doctor(tmp_path, pg, "amqp://guest:wrong@127.0.0.1:5672//")
    assert out.returncode == Problem.AUTH.value, out.stdout


def test_stale_schema(tmp_path: Path, redis: PrivateRedis) -> None:
    name = f"haflow_doctor_{os.getpid()}"
    admin = create_engine(PG_ADMIN)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        out = doctor(tmp_path, url, f"redis://127.0.0.1:{redis.port}/0")
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    assert out.returncode == Problem.SCHEMA.value, out.stdout
    assert "run `haflow db migrate`" in out.stdout


def test_visibility_timeout_below_an_execution_timeout(
    tmp_path: Path, pg: str, redis: PrivateRedis
) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "long.py").write_text(
        "from datetime import datetime\n"
        "from haflow.dag import DAG, BashTask\n"
        "with DAG('long', start_date=datetime(2026, 1, 1)):\n"
        "    BashTask('hours', bash_command='sleep 1', execution_timeout=7200)\n"
    )
    out = doctor(
        tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0", HAFLOW__CELERY__VISIBILITY_TIMEOUT="3600"
    )
    assert out.returncode == Problem.CONFIG.value, out.stdout
    assert "long.hours may run 7200 s" in out.stdout
