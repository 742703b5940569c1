"""Real metastores for integration tests: SQLite, PostgreSQL and MariaDB as they run here.

One migrated database per backend per session; every test starts from empty tables. A server
that cannot be reached skips its tests locally and fails them under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from haflow.chaos.docker import Docker, DockerError
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.models import Base
from tests.integration.web_fixtures import web_app  # noqa: F401
from tests.integration.zk_fixtures import (  # noqa: F401
    zk_chroot,
    zk_client_factory,
    zk_ensemble,
    zk_hosts,
)
from tests.redisserver import redis_url

PG_ADMIN = os.environ.get("HAFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("HAFLOW_TEST_MYSQL", "mysql://root@127.0.0.1:3306/")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql", "mysql"]
ROOT = Path(__file__).resolve().parents[2]


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)")
    pytest.skip(message)


def docker_engine() -> None:
    """A Docker engine answers, started by scripts/docker-engine.sh when none does."""
    try:
        Docker().require_engine()
        return
    except DockerError:
        pass
    try:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "docker-engine.sh")],
            check=True,
            timeout=240,
            capture_output=True,
        )
        Docker().require_engine()
    except (subprocess.SubprocessError, DockerError, OSError) as exc:
        unavailable("the Docker engine", exc)


def _server_db(admin_url: str, backend: str) -> str:
    name = f"haflow_it_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        unavailable(backend, exc)
    finally:
        admin.dispose()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _drop_server_db(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Lazily created, migrated databases, one per backend, dropped at the end."""
    made: dict[str, str] = {}
    yield made
    for backend, url in made.items():
        if backend == "postgresql":
            _drop_server_db(PG_ADMIN, url)
        elif backend == "mysql":
            _drop_server_db(MYSQL_ADMIN, url)


def database_url(backend: str, made: dict[str, str], tmp: Path) -> str:
    if backend not in made:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'haflow.db'}"
        elif backend == "postgresql":
            url = _server_db(PG_ADMIN, backend)
        else:
            url = _server_db(MYSQL_ADMIN, backend)
        engine = create_engine(url)
        migrate(engine)
        engine.dispose()
        made[backend] = url
    return made[backend]


def empty_database(
    backend: str, made: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The migrated database of `backend`, every table emptied."""
    url = database_url(backend, made, tmp_path_factory.mktemp(backend))
    engine = create_engine(url)
    truncate_all(engine)
    engine.dispose()
    return url


def redis_db(index: int) -> Iterator[str]:
    """Database `index` of this test process's own Redis server, emptied before and after."""
    try:
        import redis

        url = redis_url(index)
        client = redis.Redis.from_url(url)
        client.flushdb()
    except Exception as exc:
        unavailable("Redis", exc)
    yield url
    client.flushdb()
    client.close()


def truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(
    backend: str, database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    url = database_url(backend, database_urls, tmp_path_factory.mktemp(backend))
    engine = create_engine(url)
    truncate_all(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()
