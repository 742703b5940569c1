"""Variables and Connections read by real tasks (a real scheduler and its local executor, the
metastore of each backend): Python tasks through `Variable.get` / `Connection.get`, bash tasks
through the environment variables they name, overrides from the worker's environment; and
every secret a task prints is masked in its log as the metastore keeps it."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from haflow.core.clock import utcnow
from haflow.core.secrets import Connection
from haflow.metastore.crypto import Crypto
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW
from tests.ports import free_port
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=90.0)

PASSWORD = "S3cr@tPass:w0rd!"
TOKEN = "tok-7f3a9c2e5b"
DAG_FILE = """
import sys, time
from datetime import datetime
from haflow import DAG, BashTask, Connection, Variable, task

with DAG("it_secrets", start_date=datetime(2026, 1, 1)):
    @task
    def use():
        c = Connection.get("db")
        print("password is", c.password)
        print("uri is", c.get_uri())
        print("token is", Variable.get("api_token"))
        print("plain is", Variable.get("plain_setting"))
        print("cfg n is", Variable.get("cfg", deserialize_json=True)["n"])
        print("env is", Variable.get("from_env"))
        print("missing is", Variable.get("nope", default_var="fallback"))
        sys.stdout.write("split " + c.password[:4])  # the rest after the log was taken
        sys.stdout.flush()
        time.sleep(1.5)
        print(c.password[4:] + " end")
        return {"host": c.host, "port": c.port, "login": c.login, "extra": c.extra}

    use()
    BashTask(
        "bash_use",
        bash_command='echo "bash uri $HAFLOW_CONN_DB token $HAFLOW_VAR_API_TOKEN"',
        variables=["api_token"],
        connections=["db"],
    )
    BashTask("bash_missing", bash_command="echo never", variables=["absent"])

    @task
    def no_connection():
        Connection.get("nowhere")

    no_connection()
"""


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


def stored(db_url: str, key: str) -> None:
    engine = create_engine(db_url)
    repo = Repository(engine, crypto=Crypto(key))
    now = utcnow()
    repo.variables.set("api_token", TOKEN, now)
    repo.variables.set("plain_setting", "visible-value", now)
    repo.variables.set("cfg", '{"n": 3}', now)
    db = Connection("db", "postgresql", "db.example", "app", PASSWORD, "appdb", 5432)
    repo.connections.add(replace(db, extra={"sslmode": "require"}), now)
    engine.dispose()


def test_tasks_read_variables_and_connections_and_their_logs_mask_the_secrets(
    tmp_path: Path, db_url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored(db_url, key)
    monkeypatch.setenv("HAFLOW_VAR_FROM_ENV", "env-value")  # the worker's own override
    with scheduler_thread(
        tmp_path,
        db_url,
        {"it_secrets.py": DAG_FILE},
        HAFLOW__CORE__FERNET_KEY=key,
        HAFLOW__WORKER__HEARTBEAT_SEC="0.3",
    ) as service:
        repo = service.repo
        wait_for("the DAG to be parsed", lambda: len(repo.dags.all()) == 1)
        repo.runs.trigger("it_secrets", {}, utcnow(), run_id="r1")
        wait_for("the run to finish", lambda: _ended(repo))
        seen = _seen(repo)

    states, logs, reasons = seen["states"], seen["logs"], seen["reasons"]
    assert states == {
        "use": "success",
        "bash_use": "success",
        "bash_missing": "failed",
        "no_connection": "failed",
    }, reasons
    use = logs["use"]
    assert PASSWORD not in use and TOKEN not in use
    assert PASSWORD[:4] + PASSWORD[4:] not in use.replace("\n", "")
    assert "password is ***" in use
    assert "uri is postgresql://app:***@db.example:5432/appdb?sslmode=require" in use
    assert "token is ***" in use
    assert "plain is visible-value" in use  # not a sensitive name: shown
    assert "cfg n is 3" in use
    assert "env is env-value" in use
    assert "missing is fallback" in use
    assert "split *** end" in use
    assert (
        "bash uri postgresql://app:***@db.example:5432/appdb?sslmode=require token ***"
        in (logs["bash_use"])
    )
    assert "variable 'absent' does not exist" in logs["bash_missing"]
    assert "no connection 'nowhere'" in logs["no_connection"]


def test_tasks_test_reads_secrets_through_the_cli_and_masks_them(
    tmp_path: Path, db_url: str, key: str
) -> None:
    stored(db_url, key)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "it_secrets.py").write_text(DAG_FILE)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__CORE__DAGS_FOLDER": str(dags),
        "HAFLOW__CORE__FERNET_KEY": key,
        "HAFLOW_VAR_FROM_ENV": "env-value",
    }
    out = subprocess.run(
        [*HAFLOW, "tasks", "test", "it_secrets", "bash_use"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "token ***" in out.stdout and TOKEN not in out.stdout
    assert "app:***@db.example" in out.stdout and "S3cr" not in out.stdout


@pytest.mark.parametrize("given", ["wrong", "missing", "malformed"])
def test_a_webserver_whose_key_cannot_decrypt_what_is_stored_does_not_start(
    tmp_path: Path, db_url: str, key: str, given: str
) -> None:
    stored(db_url, key)
    fernet = {"wrong": Fernet.generate_key().decode(), "missing": "", "malformed": "k3y"}[given]
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__CORE__FERNET_KEY": fernet,
        "HAFLOW__WEBSERVER__SECRET_KEY": "x" * 64,
        "HAFLOW__WEBSERVER__PORT": str(free_port()),
    }
    out = subprocess.run(
        [*HAFLOW, "webserver"], env=env, capture_output=True, text=True, timeout=60
    )
    said = {
        "wrong": "variable 'api_token'",
        "missing": "fernet_key is empty",
        "malformed": "is not a Fernet key",
    }[given]
    assert out.returncode == 1 and said in out.stderr, out.stderr
    assert TOKEN not in out.stderr + out.stdout


def _seen(repo: Repository) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"states": {}, "logs": {}, "reasons": {}}
    for ti in repo.history.task_instances("it_secrets", "r1"):
        attempts = repo.history.attempts(ti.id)
        out["states"][ti.task_id] = ti.state
        out["reasons"][ti.task_id] = attempts[-1].reason if attempts else ""
        out["logs"][ti.task_id] = repo.history.logs(ti.id, ti.attempt) if ti.attempt else ""
    return out


def _ended(repo: Repository) -> bool:
    return repo.runs.get("it_secrets", "r1").state in ("success", "failed")
