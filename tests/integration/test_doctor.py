"""`haflow doctor` against real failures: each gives its own message and exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from haflow.doctor.probe import Problem, is_loopback
from haflow.metastore.engine import create_engine
from tests.daemons import HAFLOW
from tests.integration.conftest import PG_ADMIN, database_url, truncate_all, unavailable
from tests.ports import free_port
from tests.redisserver import PrivateRedis, RedisMissing


@pytest.fixture
def pg(database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    url = database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))
    engine = create_engine(url)
    truncate_all(engine)
    engine.dispose()
    return url


def doctor(tmp_path: Path, db: str, broker: str, **extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "dags").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CELERY__BROKER_URL": broker,
        "HAFLOW__WEBSERVER__SECRET_KEY": "s3cret-" * 6,
        "HAFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),  # a malformed one fails
        **extra,
    }
    return subprocess.run(
        [*HAFLOW, "doctor", "--allow-root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    try:
        r = PrivateRedis()
    except RedisMissing as exc:
        unavailable("redis-server", exc)
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


def own_address() -> str:
    """This machine's address on its default route (not loopback); no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        except OSError as exc:
            pytest.skip(f"no non-loopback IPv4 route here: {exc}")
        address = str(s.getsockname()[0])
    if is_loopback(address):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


def test_closed_port_is_refused(tmp_path: Path, pg: str) -> None:
    host = own_address()
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]  # closed again when the block ends
    out = doctor(tmp_path, pg, f"redis://{host}:{port}/0")
    assert out.returncode == Problem.REFUSED.value, out.stdout
    assert "refuses connections" in out.stdout and "this node itself" not in out.stdout


def test_broker_url_on_localhost_of_a_node_that_is_not_the_brokers(tmp_path: Path, pg: str) -> None:
    out = doctor(tmp_path, pg, f"amqp://haflow:pw@localhost:{free_port()}//")
    assert out.returncode == Problem.LOOPBACK.value, out.stdout
    assert "FAIL broker" in out.stdout
    assert "the broker URL points at this node itself (localhost)" in out.stdout


def test_metastore_url_on_localhost_of_a_node_that_is_not_its_host(tmp_path: Path) -> None:
    out = doctor(
        tmp_path,
        f"postgresql://haflow:pw@127.0.0.1:{free_port()}/haflow",
        "amqp://haflow:pw@no-such-broker.invalid//",
    )
    assert out.returncode == Problem.LOOPBACK.value, out.stdout
    assert "FAIL metastore" in out.stdout
    assert "the metastore URL points at this node itself (127.0.0.1)" in out.stdout


def test_loopback_names_and_addresses() -> None:
    for host in ("localhost", "127.0.0.1", "127.0.1.1", "::1", "[::1]", "db.localhost"):
        assert is_loopback(host), host
    for host in ("192.0.2.10", "no-such-host.invalid", "2001:db8::1"):
        assert not is_loopback(host), host


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


def test_a_broker_failover_list_needs_a_majority(tmp_path: Path, pg: str) -> None:
    """`url;url;url` (a RabbitMQ cluster's nodes): two of three answering pass, naming the
    third; one of three fails with the first failure's code."""
    host = own_address()
    closed = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind((host, 0))
            closed.append(f"amqp://guest:guest@{host}:{s.getsockname()[1]}//")
    good = "amqp://guest:guest@127.0.0.1:5672//"
    out = doctor(tmp_path, pg, f"{good};{good};{closed[0]}")
    assert out.returncode == 0, out.stdout
    assert "2 of 3 broker nodes" in out.stdout and "refuses connections" in out.stdout
    out = doctor(tmp_path, pg, f"{closed[0]};{good};{closed[1]}")
    assert out.returncode == Problem.REFUSED.value, out.stdout
    assert "1 of 3 broker nodes, no majority" in out.stdout


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


def test_webservers_with_another_secret_key(tmp_path: Path, pg: str, redis: PrivateRedis) -> None:
    from haflow.core.clock import utcnow
    from haflow.metastore.repository import Repository
    from haflow.web.credentials import fingerprint

    repo = Repository(create_engine(pg))
    for wid, key in (("master1:8080", "s3cret-" * 6), ("master2:8080", "an-old-key")):
        repo.members.heartbeat_webserver(
            wid, hostname=wid, pid=1, port=8080, secret_fingerprint=fingerprint(key), now=utcnow()
        )
    out = doctor(tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0")
    assert out.returncode == Problem.KEYS.value, out.stdout
    assert "FAIL webkeys" in out.stdout and "master2:8080" in out.stdout
    assert "master1:8080" not in out.stdout.split("FAIL webkeys")[1].splitlines()[0]
    repo.members.remove_webserver("master2:8080")
    out = doctor(tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0")
    assert out.returncode == 0 and "1 live webserver(s) share this key" in out.stdout
    # a worker has no web key: it checks that the webservers agree among themselves
    worker = doctor(
        tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0", HAFLOW__WEBSERVER__SECRET_KEY=""
    )
    assert worker.returncode == 0, worker.stdout
    assert "no key on this node; 1 live webserver(s) share one" in worker.stdout
    assert "right on a worker" in worker.stdout
    repo.members.heartbeat_webserver(
        "master2:8080", hostname="m2", pid=1, port=8080, secret_fingerprint="f", now=utcnow()
    )
    worker = doctor(
        tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0", HAFLOW__WEBSERVER__SECRET_KEY=""
    )
    assert worker.returncode == Problem.KEYS.value, worker.stdout
    short = doctor(
        tmp_path, pg, f"redis://127.0.0.1:{redis.port}/0", HAFLOW__WEBSERVER__SECRET_KEY="short"
    )
    assert "shorter than 32 bytes" in short.stdout
    repo.engine.dispose()
