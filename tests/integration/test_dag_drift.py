"""Masters whose DAGs folders differ, one stale, on one PostgreSQL metastore: what is scheduled
follows the versions in the metastore, not the leader's folder.

Master m2's folder holds version 1 of DAG `x` and no DAG `y`; master m1's holds version 2 of
`x` (which adds a task) and `y`. With m1 gone and the stale m2 leading, `x` stays at version
2 and its new runs have version 2's tasks and run its code (fetched from the metastore: m2's
folder never had it), and `y` stays active and runs. The other way round, a run made on
version 1 and started under m1 (whose folder never had version 1) has version 1's tasks and
runs version 1's code. Judged from the tasks' own records.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from haflow.config import load_settings
from haflow.core.clock import utcnow
from haflow.doctor.checks import Check, check_dags
from haflow.doctor.probe import Problem
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from tests.integration.conftest import empty_database
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for

X = """
import os
from datetime import datetime
from haflow.dag import DAG, BashTask

VERSION = "{version}"
MARK = (
    'echo "$HAFLOW_RUN_ID $HAFLOW_TASK_ID ' + VERSION + ' $HAFLOW_CODE_HASH" >> {marks}'
)

with DAG("x", start_date=datetime(2026, 1, 1)):
    a = BashTask("a", bash_command=MARK)
    {more}
"""
Y = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("y", start_date=datetime(2026, 1, 1)):
    BashTask("only", bash_command='echo "$HAFLOW_RUN_ID only y $HAFLOW_CODE_HASH" >> {marks}')
"""


def _x(version: int, marks: Path) -> str:
    more = 'a >> BashTask("b", bash_command=MARK)' if version == 2 else ""
    return X.format(version=version, marks=marks, more=more)


def _marks(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def test_a_stale_leader_schedules_the_metastores_versions(
    tmp_path: Path, database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = empty_database("postgresql", database_urls, tmp_path_factory)
    marks = tmp_path / "marks.txt"
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    m1.mkdir()
    m2.mkdir()
    stale = {"x.py": _x(1, marks)}
    fresh = {"x.py": _x(2, marks), "y.py": Y.format(marks=marks)}
    common = {"HAFLOW__CORE__CODE_CACHE": str(tmp_path / "cache"), "HAFLOW__ELECTION__MODE": "none"}

    with scheduler_thread(m2, db, stale, HAFLOW__CORE__HOSTNAME="m2", **common) as s:
        repo: Repository = s.repo
        wait_for("x's first version", lambda: _hash(repo, "x") is not None, 30)
        v1 = _hash(repo, "x")
        repo.dags.set_paused("x", True, utcnow())
        repo.runs.trigger("x", {}, utcnow(), run_id="old")  # made on v1, not started
    with scheduler_thread(m1, db, fresh, HAFLOW__CORE__HOSTNAME="m1", **common) as s:
        repo = s.repo
        wait_for("x's second version", lambda: _hash(repo, "x") not in (None, v1), 30)
        v2 = _hash(repo, "x")
        repo.dags.set_paused("x", False, utcnow())
        _finish(repo, ("x", "old"))
        old_tasks = {t.task_id for t in repo.history.task_instances("x", "old")}
    with scheduler_thread(m2, db, stale, HAFLOW__CORE__HOSTNAME="m2", **common) as s:
        repo = s.repo
        wait_for("m2 to take over", lambda: _hash(repo, "y") is not None, 30)
        repo.runs.trigger("x", {}, utcnow(), run_id="new")
        repo.runs.trigger("y", {}, utcnow(), run_id="new")
        _finish(repo, ("x", "new"), ("y", "new"))
        assert _hash(repo, "x") == v2 and repo.dags.get("y").is_active
        new_tasks = {t.task_id for t in repo.history.task_instances("x", "new")}
        y_hash = _hash(repo, "y")
    assert (new_tasks, old_tasks) == ({"a", "b"}, {"a"})
    ran = _marks(marks)
    assert ran[("old", "a")] == ("1", v1)  # v1, on m1 whose folder never had it
    assert ran[("new", "a")] == ran[("new", "b")] == ("2", v2)  # v2, on m2 likewise
    assert ran[("new", "only")] == ("y", y_hash)
    _doctor_says(db, m1, m2, tmp_path)


def _doctor_says(db: str, m1: Path, m2: Path, tmp_path: Path) -> None:
    """`haflow doctor`'s DAGs check on each node: the stale master fails (exit 22), naming
    what differs; the fresh one and a node without a DAGs folder (a worker) pass."""
    engine = create_engine(db)
    try:

        def check(home: Path, folder: Path) -> Check:
            env = {"HAFLOW__CORE__SQL_ALCHEMY_CONN": db, "HAFLOW__CORE__DAGS_FOLDER": str(folder)}
            return check_dags(load_settings(home=home, environ=env), engine)

        stale = check(m2, m2 / "dags")
        assert stale.finding.problem is Problem.DAGS and stale.finding.problem.value == 22
        assert "another version here: x; missing here: y" in stale.finding.detail
        assert check(m1, m1 / "dags").ok
        worker = check(tmp_path, tmp_path / "no-dags")
        assert worker.ok and "runs DAG code from the metastore" in worker.finding.detail
    finally:
        engine.dispose()


def _finish(repo: Repository, *runs: tuple[str, str]) -> None:
    for dag_id, run_id in runs:
        wait_for(f"{dag_id} {run_id} to end", functools.partial(_ended, repo, dag_id, run_id), 90)
        assert repo.runs.get(dag_id, run_id).state == "success", (dag_id, run_id)


def _hash(repo: Repository, dag_id: str) -> str | None:
    try:
        return repo.dags.get(dag_id).code_hash
    except Exception:
        return None


def _ended(repo: Repository, dag_id: str, run_id: str) -> bool:
    return repo.runs.get(dag_id, run_id).state in ("success", "failed")
