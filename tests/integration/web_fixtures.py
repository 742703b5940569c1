"""A web app over a real metastore, with one user per role, their API tokens and seeded history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from haflow.config import Settings, load_settings
from haflow.core.attempt_end import Ending
from haflow.core.planner import Decisions
from haflow.dag.bundle import Bundle
from haflow.metastore.crypto import Crypto
from haflow.metastore.records import DagCode, DagRecord, TaskDef
from haflow.metastore.repository import Repository
from haflow.metrics.endpoint import instrument
from haflow.web import create_app
from haflow.web.credentials import hash_password, new_token, token_digest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROLES = ("Admin", "Op", "Viewer")
PASSWORD = "correct-horse-1"
FERNET_KEY = Fernet.generate_key().decode()
STRUCTURE = {
    "dag_id": "d",
    "tasks": {
        "extract": {"kind": "python", "upstream": []},
        "transform": {"kind": "bash", "upstream": ["extract"]},
        "load": {"kind": "python", "upstream": ["transform"]},
    },
}
DEFS = {"d": [TaskDef(t, 0, 0.0, None, "default") for t in STRUCTURE["tasks"]]}


def code_of(text: str, helper: str = "H = 1\n") -> DagCode:
    """A code version of d.py (with a helper module)."""
    b = Bundle("d.py", (("d.py", text.encode()), ("helper.py", helper.encode())))
    return DagCode(b.hash, b.entry, b.size, b.pack())


CODE = code_of("import helper\n# the DAG d\n")


def web_settings(home: Path, db_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "webserver__secret_key": "k" * 32,
        "core__fernet_key": FERNET_KEY,
        **extra,
    }
    return load_settings(home).with_overrides(core__sql_alchemy_conn=db_url, **values)


@dataclass
class Web:
    app: Flask
    repo: Repository
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def login(self, role: str, client: FlaskClient | None = None) -> FlaskClient:
        c = client or self.app.test_client()
        token = csrf_of(c.get("/login").get_data(as_text=True))
        resp = c.post(
            "/login", data={"username": role.lower(), "password": PASSWORD, "csrf_token": token}
        )
        assert resp.status_code == 302, resp.get_data(as_text=True)
        return c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def seed(repo: Repository) -> None:
    """A DAG with one run: extract succeeded (with a log), transform running, load waiting."""
    repo.dags.sync(
        [
            DagRecord(
                "d",
                "/dags/d.py",
                "*/5 * * * *",
                None,
                False,
                16,
                ["etl"],
                "demo",
                "fp",
                STRUCTURE,
                code_hash=CODE.hash,
            )
        ],
        [("/dags/broken.py", 3, "SyntaxError: invalid syntax")],
        T0,
        code={CODE.hash: CODE},
    )
    epoch = repo.leadership.take("sched-1", "database", T0)
    repo.members.heartbeat_scheduler(
        "sched-1", hostname="m1", pid=1, state="leader", epoch=epoch, mode="database", now=T0
    )
    repo.members.heartbeat_worker(
        "w1",
        kind="celery",
        hostname="w1",
        pid=2,
        queues="default",
        concurrency=4,
        state="running",
        now=T0,
    )
    run = repo.runs.trigger("d", {"x": 1}, T0, run_id="r1")
    repo.scheduling.apply(Decisions(start_runs=[run.pk]), DEFS, epoch, T0)
    for task_id in ("extract", "transform"):
        ti = repo.history.task_instance("d", "r1", task_id)
        (ref,) = repo.scheduling.apply(Decisions(to_queue=[(ti.id, 1)]), DEFS, epoch, T0).refs
        assert repo.attempts.claim(ref, "w1", T0) is not None
    extract = repo.history.task_instance("d", "r1", "extract")
    repo.attempts.append_log(extract.id, 1, "hello from extract\n", T0)
    repo.attempts.finish(extract.id, 1, "w1", Ending.SUCCESS, "", T0, result='{"rows": 3}')


def make_web(settings: Settings, engine: Engine, clock=None) -> Web:  # type: ignore[no-untyped-def]
    app = create_app(
        settings, engine=engine, instrument=instrument, **({"clock": clock} if clock else {})
    )
    app.config["TESTING"] = True
    repo = Repository(
        engine,
        cluster=settings.scheduler.cluster,
        actor="test",
        crypto=Crypto(settings.core.fernet_key),
    )
    w = Web(app, repo, settings)
    for role in ROLES:
        if role.lower() not in {u.username for u in repo.users.all()}:
            repo.users.create(role.lower(), hash_password(PASSWORD), role, T0)
        token = new_token()
        repo.users.add_token(role.lower(), token_digest(token), "test", T0)
        w.tokens[role] = token
    return w


@pytest.fixture
def web_app(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Web]:
    settings = web_settings(tmp_path, db_url)
    repo = Repository(engine, cluster=settings.scheduler.cluster, actor="sched-1")
    seed(repo)
    yield make_web(settings, engine, clock=lambda: T0)
