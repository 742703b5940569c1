"""Issue 20's proof, end to end: a scheduler (in this process, Celery executor) on PostgreSQL
and Redis, and a real `haflow worker` process whose DAGs folder does not exist.

A DAG file and its helper module are edited while a run is in flight: the running run finishes
on its own code version (its last task is claimed after the edit and still runs the old code),
the next run runs the new one, and the tasks' own records name the version they ran. The
worker has no DAGs folder: everything it ran came from the metastore.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.config.schema import DEFAULT_TASK_ENV
from haflow.core.clock import utcnow
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW, launch
from tests.integration.conftest import empty_database, redis_db
from tests.waiting import wait_for

DAG_FILE = """
import os
from datetime import datetime
from haflow.dag import DAG, BashTask, PythonTask
import vd_helper

VERSION = "{version}"

def report():
    with open({marks!r}, "a") as f:
        f.write(" ".join([os.environ["HAFLOW_RUN_ID"], VERSION, vd_helper.VERSION,
                          os.environ["HAFLOW_CODE_HASH"], __file__]) + "\\n")

with DAG("vd", start_date=datetime(2026, 1, 1)):
    gate = BashTask("gate", bash_command=(
        "for i in $(seq 600); do [ -e {gate} ] && exit 0; sleep 0.1; done; exit 1"
    ))
    gate >> PythonTask("report", python_callable=report)
"""


BROKEN_ON_WORKERS = """
import os
from datetime import datetime
from haflow.dag import DAG, BashTask

if os.environ.get("VD_WORKER"):  # a module the masters have and this worker lacks
    raise ImportError("vd_dep is not installed on this node")

with DAG("vd_broken", start_date=datetime(2026, 1, 1)):
    BashTask("t", bash_command="true")
"""


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_db(6)


def _write(dags: Path, marks: Path, gate: Path, version: str) -> None:
    (dags / "vd.py").write_text(DAG_FILE.format(version=version, marks=str(marks), gate=gate))
    (dags / "vd_helper.py").write_text(f"VERSION = 'helper-{version}'\n")


def test_a_run_keeps_its_code_across_an_edit_on_a_worker_without_dags(
    tmp_path: Path,
    redis_url: str,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pg = empty_database("postgresql", database_urls, tmp_path_factory)
    dags, marks, gate = tmp_path / "dags", tmp_path / "marks.txt", tmp_path / "gate"
    dags.mkdir()
    _write(dags, marks, gate, "1")
    (dags / "vd_broken.py").write_text(BROKEN_ON_WORKERS)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": pg,
        "HAFLOW__CORE__EXECUTOR": "celery",
        "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "0.5",
        "HAFLOW__CELERY__BROKER_URL": redis_url,
        "HAFLOW__ELECTION__MODE": "none",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
    }
    service = build_scheduler(load_settings(home=tmp_path, environ=env))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    worker_env = {
        **env,
        "HAFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no-such-folder"),
        "HAFLOW__CORE__CODE_CACHE": str(tmp_path / "code-cache"),
        "HAFLOW__WORKER__TASK_ENV_ALLOWLIST": f"{DEFAULT_TASK_ENV} VD_WORKER",
        "VD_WORKER": "1",
    }
    worker_cmd = [*HAFLOW, "worker", "-c", "2", "-n", "w1", "--allow-root"]
    worker = launch(worker_cmd, worker_env, tmp_path / "w1.log")
    repo: Repository = service.repo
    try:
        wait_for("the DAG to be parsed", lambda: _code_hash(repo) is not None, 30)
        v1 = _code_hash(repo)
        repo.runs.trigger("vd", {}, utcnow(), run_id="r1")
        wait_for("r1's gate to run", lambda: _state(repo, "r1", "gate") == "running", 60)
        time.sleep(0.05)
        _write(dags, marks, gate, "2")  # mid-run: both the DAG file and its helper
        wait_for("the edit to be a new version", lambda: _code_hash(repo) != v1, 30)
        v2 = _code_hash(repo)
        repo.runs.trigger("vd", {}, utcnow(), run_id="r2")
        gate.touch()
        wait_for("both runs to end", lambda: _ended(repo, "r1") and _ended(repo, "r2"), 90)
        assert repo.runs.get("vd", "r1").state == "success"
        assert repo.runs.get("vd", "r2").state == "success"
        rows = {line.split()[0]: line.split()[1:] for line in marks.read_text().splitlines()}
        cache = tmp_path / "code-cache"
        assert rows["r1"][:3] == ["1", "helper-1", v1]  # claimed after the edit: still v1
        assert rows["r2"][:3] == ["2", "helper-2", v2]
        assert rows["r1"][3] == str(dags / "vd.py")  # run as the file it was parsed from
        assert not (tmp_path / "no-such-folder").exists()
        assert sorted(p.name for p in cache.iterdir()) == sorted([str(v1), str(v2)])

        _check_broken_on_worker(repo)
        cli = {**env, "HAFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no-such-folder")}
        _check_cli(cli, str(v1), str(v2))
        _check_push(cli, tmp_path / "ci", marks, gate)
    except BaseException:
        print((tmp_path / "w1.log").read_text()[-4000:])
        raise
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        service.stop_requested.set()
        thread.join(30)


def _check_broken_on_worker(repo: Repository) -> None:
    """A version that fails to import on the worker fails its attempt, the error in its log."""
    repo.runs.trigger("vd_broken", {}, utcnow(), run_id="b1")
    wait_for("b1 to end", lambda: repo.runs.get("vd_broken", "b1").state in ("success", "failed"))
    assert repo.runs.get("vd_broken", "b1").state == "failed"
    ti = repo.history.task_instance("vd_broken", "b1", "t")
    log = repo.history.logs(ti.id, 1)
    assert "cannot load DAG file" in log, log
    assert "ImportError: vd_dep is not installed on this node" in log, log


def _check_cli(cli: dict[str, str], v1: str, v2: str) -> None:
    """`haflow dags versions`, `code` and `diff`, on a node without DAG files."""
    listed = json.loads(_cli(cli, "dags", "versions", "vd", "-o", "json"))
    assert [(v["version"], v["current"], v["runs"]) for v in listed] == [
        (v2[:12], True, 1),
        (v1[:12], False, 1),
    ]
    assert 'VERSION = "1"' in _cli(cli, "dags", "code", "vd", "--run-id", "r1")
    helper = _cli(cli, "dags", "code", "vd", "--version", v1[:8], "--file", "vd_helper.py")
    assert helper == "VERSION = 'helper-1'\n"
    changes = _cli(cli, "dags", "diff", "vd", v1[:8])
    assert "-VERSION = 'helper-1'" in changes and '+VERSION = "2"' in changes


def _check_push(cli: dict[str, str], ci: Path, marks: Path, gate: Path) -> None:
    """`haflow dags push` from a folder outside every DAGs folder (as from CI)."""
    ci.mkdir()
    _write(ci, marks, gate, "3")
    dry = _cli(cli, "dags", "push", str(ci), "--dry-run")
    assert "not stored (dry run)" in dry and len(_versions(cli)) == 2
    pushed = json.loads(_cli(cli, "dags", "push", str(ci / "vd.py"), "-o", "json"))
    assert [(p["dag_id"], p["tasks"], p["pushed"]) for p in pushed] == [("vd", 2, "new version")]
    assert _versions(cli)[0]["version"] == pushed[0]["version"]
    assert "helper-3" in _cli(cli, "dags", "code", "vd", "--file", "vd_helper.py")
    (ci / "broken.py").write_text("raise RuntimeError('no')\n")
    out = subprocess.run(
        [*HAFLOW, "dags", "push", str(ci / "broken.py")], env=cli, capture_output=True, text=True
    )
    assert out.returncode == 1 and "RuntimeError: no" in out.stderr


def _versions(cli: dict[str, str]) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(_cli(cli, "dags", "versions", "vd", "-o", "json"))
    return listed


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([*HAFLOW, *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"haflow {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def _code_hash(repo: Repository) -> str | None:
    try:
        return repo.dags.get("vd").code_hash
    except Exception:
        return None


def _state(repo: Repository, run_id: str, task_id: str) -> str | None:
    try:
        return repo.history.task_instance("vd", run_id, task_id).state
    except Exception:
        return None


def _ended(repo: Repository, run_id: str) -> bool:
    return repo.runs.get("vd", run_id).state in ("success", "failed")
