"""Marking runs and task instances success or failed, through the CLI, the API and the pages,
on every metastore: the states that change, the attempt in flight stopped (its worker's
heartbeat and report are refused), the run going on, and an event naming who did it.

The seeded run r1 of DAG d: extract succeeded, transform is running (claimed by w1), load has
not run (tests/integration/web_fixtures.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from haflow.core.attempt_end import Ending
from haflow.core.states import RunState, TaskState
from haflow.errors import InvalidRequest, NotFound
from tests.daemons import HAFLOW
from tests.integration.web_fixtures import T0, Web, csrf_of


def _states(w: Web) -> dict[str, str]:
    return {t.task_id: t.state for t in w.repo.history.task_instances("d", "r1")}


def _transform_attempt(w: Web) -> tuple[int, int]:
    ti = w.repo.history.task_instance("d", "r1", "transform")
    return ti.id, ti.attempt


def test_marking_a_running_task_failed_stops_its_attempt(web_app: Web) -> None:
    repo = web_app.repo
    ti_id, attempt = _transform_attempt(web_app)
    assert repo.runs.mark_task("d", "r1", "transform", TaskState.FAILED, T0, actor="ann")
    assert not repo.runs.mark_task("d", "r1", "transform", TaskState.FAILED, T0, actor="ann")
    assert _states(web_app) == {"extract": "success", "transform": "failed", "load": "none"}
    (a,) = repo.history.attempts(ti_id)
    assert a.state == "failed" and "marked failed by ann while running" in a.reason
    assert not repo.attempts.heartbeat(ti_id, attempt, "w1")  # the worker stops it
    assert not repo.attempts.finish(ti_id, attempt, "w1", Ending.SUCCESS, "", T0)
    assert repo.runs.get("d", "r1").state == RunState.RUNNING  # the planner goes on from here
    (event,) = repo.history.events(kinds=["ti.marked"])
    assert (event.actor, event.task_id) == ("ann", "transform")
    assert '"was": "running"' in event.detail


def test_a_mark_names_a_task_and_a_state_it_can_take(web_app: Web) -> None:
    repo = web_app.repo
    for call in (
        lambda: repo.runs.mark_task("d", "r1", "transform", TaskState.SKIPPED, T0),
        lambda: repo.runs.mark("d", "r1", RunState.RUNNING, T0),
    ):
        try:
            call()
        except InvalidRequest as exc:
            assert "success or failed" in str(exc)
        else:
            raise AssertionError("marked a state that cannot be marked")
    try:
        repo.runs.mark_task("d", "r1", "nope", TaskState.SUCCESS, T0)
    except NotFound as exc:
        assert "no task 'nope'" in str(exc)
    else:
        raise AssertionError("marked a task the run does not have")


def test_marking_a_run_failed_through_the_api_fails_what_runs_and_skips_the_rest(
    web_app: Web,
) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Op")
    resp = c.patch("/api/v1/dags/d/dagRuns/r1", json={"state": "failed"}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["state"] == "failed"
    assert _states(web_app) == {"extract": "success", "transform": "failed", "load": "skipped"}
    bad = c.patch("/api/v1/dags/d/dagRuns/r1", json={"state": "running"}, headers=h)
    assert bad.status_code == 400 and bad.get_json()["field"] == "state"
    (event,) = web_app.repo.history.events(kinds=["run.marked"])
    assert event.actor == "op"


def test_marking_a_task_success_through_the_api_and_the_run_through_the_pages(
    web_app: Web,
) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Op")
    path = "/api/v1/dags/d/dagRuns/r1/taskInstances/transform"
    dry = c.patch(path, json={"new_state": "success"}, headers=h)  # Airflow's default: dry
    assert dry.status_code == 200 and dry.get_json()["state"] == "running"
    resp = c.patch(path, json={"new_state": "success", "dry_run": False}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["state"] == "success"
    page = web_app.login("Op")
    token = csrf_of(page.get("/dags/d/runs/r1/tasks/load").get_data(as_text=True))
    form = {"state": "success", "csrf_token": token}
    assert page.post("/dags/d/runs/r1/mark", data=form).status_code == 302
    assert _states(web_app) == dict.fromkeys(("extract", "transform", "load"), "success")
    assert web_app.repo.runs.get("d", "r1").state == RunState.SUCCESS
    marks = web_app.repo.history.events(kinds=["ti.marked", "run.marked"])
    assert sorted((e.kind, e.actor) for e in marks) == [("run.marked", "op"), ("ti.marked", "op")]


def test_the_pages_mark_a_task_and_the_cli_marks_it_back(
    web_app: Web, db_url: str, tmp_path: Path
) -> None:
    page = web_app.login("Op")
    token = csrf_of(page.get("/dags/d/runs/r1/tasks/extract").get_data(as_text=True))
    form = {"state": "failed", "csrf_token": token}
    assert page.post("/dags/d/runs/r1/tasks/extract/mark", data=form).status_code == 302
    assert _states(web_app)["extract"] == "failed"
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}

    def haflow(*args: str) -> str:
        done = subprocess.run([*HAFLOW, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "extract of d r1 marked success" in haflow(
        "tasks", "mark", "d", "r1", "extract", "success"
    )
    assert _states(web_app)["extract"] == "success"
    assert "marked failed; 2 task(s) changed" in haflow("dags", "mark-run", "d", "r1", "failed")
    marks = web_app.repo.history.events(kinds=["ti.marked", "run.marked"])
    by = sorted((e.kind, e.actor.split(":")[0]) for e in marks)
    assert by == [("run.marked", "cli"), ("ti.marked", "cli"), ("ti.marked", "op")]
