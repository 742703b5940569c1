"""The REST API and the pages against every metastore: shapes, paging, errors, writes, health."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from haflow.core.attempt_end import Ending
from haflow.web import create_app
from tests.integration.web_fixtures import T0, Web, csrf_of, web_settings


def test_dags_runs_and_task_instances(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Viewer")
    dags = c.get("/api/v1/dags", headers=h).get_json()
    assert dags["total_entries"] == 1 and dags["limit"] == 100 and dags["offset"] == 0
    assert c.get("/api/v1/dags?paused=True", headers=h).get_json()["dags"] == []  # as Airflow's
    assert c.get("/api/v1/dags?tags=etl&paused=False", headers=h).get_json()["total_entries"] == 1
    d = dags["dags"][0]  # Airflow's collection key, tags as objects
    assert d["dag_id"] == "d" and d["is_paused"] is False and d["tags"] == [{"name": "etl"}]
    assert d["run_states"] == {"running": 1}
    assert d["task_states"] == {"success": 1, "running": 1, "none": 1}
    assert [t["task_id"] for t in d["tasks"]] == ["extract", "transform", "load"]
    assert d["next_dagrun"] == "2026-03-01T12:05:00+00:00"
    assert d["schedule_interval"] == {"__type": "CronExpression", "value": d["schedule"]}
    runs = c.get("/api/v1/dags/d/dagRuns", headers=h).get_json()
    assert runs["total_entries"] == 1 and runs["dag_runs"][0]["conf"] == {"x": 1}
    tis = c.get("/api/v1/dags/d/dagRuns/r1/taskInstances", headers=h).get_json()
    assert {t["task_id"]: t["state"] for t in tis["task_instances"]} == {
        "extract": "success",
        "transform": "running",
        "load": "none",
    }
    ti = c.get("/api/v1/dags/d/dagRuns/r1/taskInstances/extract", headers=h).get_json()
    assert ti["attempts"][0]["state"] == "success" and ti["attempts"][0]["worker"] == "w1"
    assert (ti["try_number"], ti["hostname"], ti["map_index"]) == (1, "w1", -1)
    assert ti["result"] == ti["attempts"][0]["result"] == {"rows": 3}
    page = web_app.login("Viewer").get("/dags/d/runs/r1/tasks/extract").get_data(as_text=True)
    assert 'data-testid="result">{\n  &#34;rows&#34;: 3\n}</pre>' in page
    log = c.get("/api/v1/dags/d/dagRuns/r1/taskInstances/extract/logs/1", headers=h).get_json()
    assert log["content"] == "hello from extract\n" and log["ended"] is True


def test_a_running_attempts_log_is_read_from_a_cursor_until_it_ends(web_app: Web) -> None:
    c, h, repo = web_app.app.test_client(), web_app.auth("Viewer"), web_app.repo
    url = "/api/v1/dags/d/dagRuns/r1/taskInstances/transform/logs/1"
    ti = repo.history.task_instance("d", "r1", "transform")
    repo.attempts.append_log(ti.id, 1, "one\n", T0)
    first = c.get(url, headers=h).get_json()
    assert (first["content"], first["ended"]) == ("one\n", False)
    repo.attempts.append_log(ti.id, 1, "two\n", T0)
    repo.attempts.append_log(ti.id, 1, "three\n", T0)
    nxt = c.get(f"{url}?cursor={first['cursor']}", headers=h).get_json()
    assert (nxt["content"], nxt["ended"]) == ("two\nthree\n", False)
    same = c.get(f"{url}?cursor={nxt['cursor']}", headers=h).get_json()
    assert (same["content"], same["cursor"]) == ("", nxt["cursor"])  # nothing new
    assert repo.attempts.finish(ti.id, 1, "w1", Ending.SUCCESS, "", T0, log="four\n")
    last = c.get(f"{url}?cursor={nxt['cursor']}", headers=h).get_json()
    assert (last["content"], last["ended"]) == ("four\n", True)
    bad = c.get(f"{url}?cursor=-1", headers=h)
    assert bad.status_code == 400 and bad.get_json()["field"] == "cursor"


def test_trigger_with_conf_pause_and_clear(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Op")
    resp = c.post(
        "/api/v1/dags/d/dagRuns", json={"conf": {"n": 3}, "dag_run_id": "mine"}, headers=h
    )
    assert resp.status_code == 201 and resp.get_json()["state"] == "queued"
    assert web_app.repo.runs.get("d", "mine").conf == {"n": 3}
    again = c.post("/api/v1/dags/d/dagRuns", json={"dag_run_id": "mine"}, headers=h)
    assert again.status_code == 409 and "already" in again.get_json()["detail"]
    assert c.patch("/api/v1/dags/d", json={"is_paused": True}, headers=h).get_json()["is_paused"]
    assert web_app.repo.dags.get("d").is_paused
    clear = "/api/v1/dags/d/dagRuns/r1/clear"
    wide = {"task_ids": ["extract"], "include_downstream": True, "dry_run": True}
    dry = c.post(clear, json=wide, headers=h).get_json()
    assert dry["total_entries"] == 1  # transform runs: only extract is cleared
    assert [t["task_id"] for t in dry["task_instances"]] == ["extract"]
    assert web_app.repo.history.task_instance("d", "r1", "extract").state == "success"
    default = c.post(clear, json={"task_ids": ["extract"]}, headers=h).get_json()
    assert default["total_entries"] == 1, "a dry run unless dry_run is false, as in Airflow"
    assert web_app.repo.history.task_instance("d", "r1", "extract").state == "success"
    unknown = c.post(clear, json={"task_ids": ["nope"]}, headers=h)
    assert unknown.status_code == 400 and "no task nope" in unknown.get_json()["detail"]
    cleared = c.post(clear, json={"task_ids": ["extract"], "dry_run": False}, headers=h)
    assert cleared.get_json()["dag_run_id"] == "r1"  # the run, as Airflow answers
    assert web_app.repo.history.task_instance("d", "r1", "extract").state == "none"
    events = c.get("/api/v1/events?limit=5", headers=h).get_json()["events"]
    assert [e["kind"] for e in events][:3] == ["ti.cleared", "dag.paused", "run.triggered"]
    assert events[0]["actor"] == "op"  # the user who cleared


def test_errors_name_the_field_at_fault(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Admin")
    cases = [
        (c.get, "/api/v1/dags?limit=0", None, "limit"),
        (c.get, "/api/v1/dags?offset=x", None, "offset"),
        (c.post, "/api/v1/dags/d/dagRuns", {"conf": [1]}, "conf"),
        (c.post, "/api/v1/dags/d/dagRuns", {"dag_run_id": "a/b"}, "dag_run_id"),
        (c.post, "/api/v1/dags/d/dagRuns", {"color": "red"}, "color"),
        (c.patch, "/api/v1/dags/d", {"is_paused": "yes"}, "is_paused"),
        (c.post, "/api/v1/dags/d/dagRuns/r1/clear", {"task_ids": "extract"}, "task_ids"),
        (c.post, "/api/v1/dags/d/dagRuns/r1/clear", {"only_failed": 1}, "only_failed"),
        (c.get, "/api/v1/dags/d/dagRuns/r1/taskInstances/extract/logs/7", None, "attempt"),
        (c.get, "/api/v1/dags?paused=maybe", None, "paused"),
        (c.get, "/api/v1/dags?order_by=fileloc", None, "order_by"),
        (c.patch, "/api/v1/dags/d?update_mask=tags", {"is_paused": True}, "update_mask"),
        (c.get, "/api/v1/dags/d/dagRuns/r1/taskInstances/extract/logs/1?token=x", None, "token"),
        (c.patch, "/api/v1/dags/d/dagRuns/r1/taskInstances/load", {"dry_run": 0}, "new_state"),
    ]
    for call, path, body, field in cases:
        resp = call(path, json=body, headers=h) if body is not None else call(path, headers=h)
        assert resp.status_code == 400, (path, resp.status_code)
        assert resp.get_json()["field"] == field, resp.get_json()
    resp = c.post("/api/v1/dags/d/dagRuns", data="not json", headers=h)
    assert resp.status_code == 400 and resp.get_json()["field"] == "body"
    for path in ["/api/v1/dags/nope", "/api/v1/dags/d/dagRuns/nope", "/api/v1/nothing"]:
        resp = c.get(path, headers=h)
        assert resp.status_code == 404 and resp.get_json()["detail"], path


def test_every_list_is_paged(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Op")
    for i in range(5):
        c.post("/api/v1/dags/d/dagRuns", json={"dag_run_id": f"p{i}"}, headers=h)
    page = c.get("/api/v1/dags/d/dagRuns?limit=2&offset=1", headers=h).get_json()
    runs = [r["dag_run_id"] for r in page["dag_runs"]]
    assert page["total_entries"] == 6 and runs == ["p3", "p2"]
    events = c.get("/api/v1/events?limit=2&kind=run.trig*", headers=h).get_json()
    assert events["total_entries"] == 6 and len(events["events"]) == 2
    tis = c.get("/api/v1/dags/d/dagRuns/r1/taskInstances?limit=1&offset=2", headers=h).get_json()
    assert tis["total_entries"] == 3 and len(tis["task_instances"]) == 1
    errors = c.get("/api/v1/importErrors", headers=h).get_json()
    assert errors["import_errors"][0]["line"] == 3
    assert errors["import_errors"][0]["stack_trace"].startswith("line 3: ")


def test_health_names_the_leader_and_fails_without_one(web_app: Web) -> None:
    c = web_app.app.test_client()
    # before login: how things are, not where (no host, pid, epoch or mode)
    anonymous = c.get("/health").get_json()
    assert anonymous == {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
    body = c.get("/health", headers=web_app.auth("Viewer")).get_json()
    assert body["metadatabase"] == {"status": "healthy"}
    assert body["scheduler"]["status"] == "healthy"
    assert body["leader"] == "sched-1" and body["elector_mode"] == "database"
    assert body["epoch"] == web_app.repo.leadership.current().epoch  # type: ignore[union-attr]
    cluster = c.get("/api/v1/cluster", headers=web_app.auth("Viewer")).get_json()
    assert cluster["leader"] == "sched-1" and cluster["schedulers"][0]["role"] == "leader"
    (worker,) = cluster["workers"]
    assert (worker["worker"], worker["state"], worker["running"]) == ("w1", "running", 1)
    # the leader stops heartbeating: stale after [webserver] scheduler_health_threshold
    late = create_app(
        web_app.settings, engine=web_app.repo.engine, clock=lambda: T0.replace(minute=1)
    )
    resp = late.test_client().get("/health", headers=web_app.auth("Viewer"))
    dead = late.test_client().get("/api/v1/cluster", headers=web_app.auth("Viewer")).get_json()
    assert dead["workers"][0]["state"] == "dead" and dead["schedulers"][0]["role"] == "dead"
    assert resp.status_code == 503 and resp.get_json()["scheduler"]["status"] == "unhealthy"
    assert resp.get_json()["leader"] is None
    # Airflow's /api/v1/health says the same with 200, to anyone (its monitors read the body)
    airflows = late.test_client().get("/api/v1/health")
    assert airflows.status_code == 200
    assert airflows.get_json()["scheduler"]["status"] == "unhealthy"


def test_ready_and_health_fail_when_the_metastore_is_unreachable(
    engine: Engine, tmp_path: Path
) -> None:
    settings = web_settings(tmp_path, "postgresql://haflow@127.0.0.1:1/none?connect_timeout=2")
    c = create_app(settings).test_client()
    resp = c.get("/ready")
    # before login no driver error (it names the database's host, port and user)
    assert resp.status_code == 503 and resp.get_json() == {"status": "unavailable"}
    health = c.get("/health")
    assert health.status_code == 503 and health.get_json()["metadatabase"]["status"] == "unhealthy"
    assert "detail" not in health.get_json()["metadatabase"]
    airflows = c.get("/api/v1/health")  # Airflow's statuses: healthy or unhealthy, never unknown
    assert airflows.status_code == 200 and airflows.get_json() == {
        "metadatabase": {"status": "unhealthy"},
        "scheduler": {"status": "unhealthy"},
    }


def test_pages_render_what_the_metastore_holds(web_app: Web) -> None:
    c = web_app.login("Admin")
    dags = c.get("/dags").get_data(as_text=True)
    assert 'data-dag="d"' in dags and "1 DAG file(s) failed to load" in dags
    grid = c.get("/dags/d").get_data(as_text=True)
    assert 'data-task="extract" data-run="r1" data-state="success"' in grid
    assert 'data-task="transform" data-run="r1" data-state="running"' in grid
    graph = c.get("/dags/d/graph").get_data(as_text=True)
    assert graph.count('class="node"') == 3 and graph.count("marker-end") == 2
    ti = c.get("/dags/d/runs/r1/tasks/extract").get_data(as_text=True)
    assert "hello from extract" in ti and "w1" in ti
    gantt = c.get("/dags/d/runs/r1/gantt").get_data(as_text=True)
    assert 'data-task="extract #1" data-state="success"' in gantt
    assert 'data-task="transform #1" data-state="running"' in gantt
    assert 'href="/dags/d/runs/r1/gantt"' in grid
    assert 'data-testid="durations"' not in grid  # r1 has not ended
    cluster = c.get("/cluster").get_data(as_text=True)
    assert 'data-testid="leader-name">sched-1<' in cluster
    assert "SyntaxError" in c.get("/import-errors").get_data(as_text=True)
    events = c.get("/events?kind=run.*").get_data(as_text=True)
    assert "run.triggered" in events and "attempt.claimed" not in events
    # a trigger with bad JSON conf is refused with the reason, and nothing is created
    token = csrf_of(grid)
    resp = c.post(
        "/dags/d/trigger", data={"conf": "{oops", "csrf_token": token}, follow_redirects=True
    )
    assert "conf is not valid JSON" in resp.get_data(as_text=True)
    assert len(web_app.repo.runs.find("d")) == 1
    c.post("/dags/d/trigger", data={"conf": '{"k": 2}', "csrf_token": token})
    assert web_app.repo.runs.find("d")[0].conf == {"k": 2}


def test_metrics_count_requests_by_route(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Viewer")
    for _ in range(3):
        c.get("/api/v1/dags/d", headers=h)
    c.get("/api/v1/dags/d", headers={"Authorization": "Bearer wrong"})
    body = c.get("/metrics", headers=h).get_data(as_text=True)
    ok = 'haflow_http_requests_total{endpoint="api.get_dag",method="GET",status="200"}'
    refused = 'haflow_http_requests_total{endpoint="api.get_dag",method="GET",status="401"}'
    assert float(_sample(body, ok)) >= 3.0 and float(_sample(body, refused)) >= 1.0
    assert "haflow_build_info{" in body and 'daemon="webserver"' in body


def _sample(body: str, series: str) -> str:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return line.split()[-1]
    raise AssertionError(f"no sample {series} in /metrics")


def test_a_trigger_with_a_bad_param_is_refused_naming_it(web_app: Web) -> None:
    import json

    from sqlalchemy import select, update

    from haflow.metastore import models as m

    with web_app.repo.engine.begin() as conn:
        structure = json.loads(
            conn.execute(select(m.Dag.structure).where(m.Dag.dag_id == "d")).scalar_one()
        )
        structure["params"] = {"n": {"type": "integer", "maximum": 5, "default": 1}}
        conn.execute(
            update(m.Dag).where(m.Dag.dag_id == "d").values(structure=json.dumps(structure))
        )
    c, h = web_app.app.test_client(), web_app.auth("Op")
    bad = c.post("/api/v1/dags/d/dagRuns", json={"conf": {"n": 9}}, headers=h)
    assert bad.status_code == 400 and bad.get_json()["field"] == "n"
    assert "param 'n' must be <= 5" in bad.get_json()["detail"]
    good = c.post("/api/v1/dags/d/dagRuns", json={"conf": {"n": 4}}, headers=h)
    assert good.status_code == 201


def test_the_trigger_form_is_built_from_the_params_and_checks_them(web_app: Web) -> None:
    import json

    from sqlalchemy import select, update

    from haflow.metastore import models as m

    with web_app.repo.engine.begin() as conn:
        structure = json.loads(
            conn.execute(select(m.Dag.structure).where(m.Dag.dag_id == "d")).scalar_one()
        )
        structure["params"] = {
            "n": {"type": "integer", "minimum": 1, "default": 2},
            "dry": {"type": "boolean", "default": False},
        }
        conn.execute(
            update(m.Dag).where(m.Dag.dag_id == "d").values(structure=json.dumps(structure))
        )
    c = web_app.login("Op")
    grid = c.get("/dags/d").get_data(as_text=True)
    assert 'name="param:n" data-testid="param-n" value="2"' in grid
    token = csrf_of(grid)
    form = {"conf": "{}", "csrf_token": token, "param:n": "x", "param:dry": "false"}
    page = c.post("/dags/d/trigger", data=form, follow_redirects=True).get_data(as_text=True)
    assert "param &#39;n&#39; must be of type integer" in page
    form |= {"param:n": "7", "run_id": "formed"}
    c.post("/dags/d/trigger", data=form)
    assert web_app.repo.runs.get("d", "formed").conf == {"n": 7, "dry": False}


def test_pools_through_the_api_and_the_page(web_app: Web) -> None:
    c = web_app.app.test_client()
    viewer, op = web_app.auth("Viewer"), web_app.auth("Op")
    listed = c.get("/api/v1/pools", headers=viewer).get_json()
    default = listed["pools"][0]
    assert listed["total_entries"] == 1 and default["name"] == "default_pool"
    assert (default["slots"], default["running_slots"], default["open_slots"]) == (-1, 1, -1)
    assert (
        c.post("/api/v1/pools", json={"name": "db", "slots": 2}, headers=viewer).status_code == 403
    )
    made = c.post("/api/v1/pools", json={"name": "db", "slots": 2, "description": "x"}, headers=op)
    assert made.status_code == 201 and made.get_json()["open_slots"] == 2
    bad = c.post("/api/v1/pools", json={"name": "db", "slots": -2}, headers=op)
    assert bad.status_code == 400 and bad.get_json()["field"] == "slots"
    patched = c.patch("/api/v1/pools/db", json={"slots": 5}, headers=op).get_json()
    assert (patched["slots"], patched["description"]) == (5, "x")
    assert c.get("/api/v1/pools/nope", headers=viewer).status_code == 404
    assert c.delete("/api/v1/pools/default_pool", headers=op).status_code == 409
    assert c.delete("/api/v1/pools/db", headers=op).status_code == 204
    page = web_app.login("Op").get("/pools").get_data(as_text=True)
    assert 'data-testid="pool-default_pool"' in page and 'data-testid="set-pool"' in page
    assert "no cap" in page
    assert 'data-testid="set-pool"' not in web_app.login("Viewer").get("/pools").get_data(
        as_text=True
    )


def test_backfills_through_the_api(web_app: Web) -> None:
    from datetime import timedelta

    from haflow.metastore.records import DagRecord

    web_app.repo.dags.sync(
        [
            DagRecord("d", "/dags/d.py", "*/5 * * * *", None, False, 16, ["etl"], "demo", "fp"),
            DagRecord(
                "bf", "/dags/bf.py", "@hourly", T0 - timedelta(days=1), False, 16, [], "", "f"
            ),
        ],
        [],
        T0,
    )
    c, viewer, op = web_app.app.test_client(), web_app.auth("Viewer"), web_app.auth("Op")
    span = {"from_date": (T0 - timedelta(hours=5)).isoformat(), "to_date": T0.isoformat()}
    dry = c.post("/api/v1/backfills", json={"dag_id": "bf", **span, "dry_run": True}, headers=op)
    assert dry.status_code == 200 and dry.get_json()["total_entries"] == 5  # the ended ones
    assert (
        c.post("/api/v1/backfills", json={"dag_id": "bf", **span}, headers=viewer).status_code
        == 403
    )
    made = c.post(
        "/api/v1/backfills", json={"dag_id": "bf", **span, "max_active_runs": 2}, headers=op
    )
    body = made.get_json()
    assert made.status_code == 201 and (body["state"], body["intervals"]) == ("running", 5)
    assert body["created_by"] == "op"
    assert c.get(f"/api/v1/backfills/{body['id']}", headers=viewer).get_json()["id"] == body["id"]
    assert c.get("/api/v1/backfills?dag_id=bf", headers=viewer).get_json()["total_entries"] == 1
    unscheduled = c.post("/api/v1/backfills", json={"dag_id": "d", **span}, headers=op)
    assert unscheduled.status_code == 400 and "no start_date" in unscheduled.get_json()["detail"]
    bad = c.post(
        "/api/v1/backfills", json={"dag_id": "bf", **span, "from_date": "soon"}, headers=op
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "from_date"
    assert c.get("/api/v1/backfills/999", headers=viewer).status_code == 404


def test_the_configuration_is_for_admins_with_secrets_masked(web_app: Web) -> None:
    c = web_app.app.test_client()
    for role in ("Viewer", "Op"):
        assert c.get("/api/v1/config", headers=web_app.auth(role)).status_code == 403, role
    admin = web_app.auth("Admin")
    body = c.get("/api/v1/config?section=core", headers=admin).get_json()
    (core,) = body["sections"]
    options = {o["key"]: o["value"] for o in core["options"]}
    assert options["sql_alchemy_conn"] == "***" and options["dags_folder"]
    missing = c.get("/api/v1/config?section=nope", headers=admin)
    assert missing.status_code == 404 and "sections: core" in missing.get_json()["detail"]


def test_a_finished_run_and_a_dag_deleted_not_while_running(web_app: Web) -> None:
    c, h, repo = web_app.app.test_client(), web_app.auth("Op"), web_app.repo
    running = c.delete("/api/v1/dags/d/dagRuns/r1", headers=h)  # r1 runs transform
    assert running.status_code == 409 and "mark it" in running.get_json()["detail"]
    assert c.delete("/api/v1/dags/d", headers=h).status_code == 409
    c.patch("/api/v1/dags/d/dagRuns/r1", json={"state": "failed"}, headers=h)
    assert c.delete("/api/v1/dags/d/dagRuns/r1", headers=h).status_code == 204
    assert c.get("/api/v1/dags/d/dagRuns/r1", headers=h).status_code == 404
    assert [e.run_id for e in repo.history.events(kinds=["run.deleted"])] == ["r1"]
    assert c.delete("/api/v1/dags/d/dagRuns/r1", headers=h).status_code == 404
    viewer = c.delete("/api/v1/dags/d", headers=web_app.auth("Viewer"))
    assert viewer.status_code == 403
    assert c.delete("/api/v1/dags/d", headers=h).status_code == 204
    assert c.get("/api/v1/dags/d", headers=h).status_code == 404


def test_an_unknown_query_parameter_is_refused_not_ignored(web_app: Web) -> None:
    """An Airflow filter haflow lacks would otherwise answer an unfiltered list."""
    c, h = web_app.app.test_client(), web_app.auth("Viewer")
    resp = c.get("/api/v1/dags/d/dagRuns?execution_date_gte=2026-01-01T00:00:00Z", headers=h)
    assert resp.status_code == 400 and resp.get_json()["field"] == "execution_date_gte"
    assert "allowed: limit, offset, order_by, state" in resp.get_json()["detail"]
    assert c.get("/api/v1/dags/d/dagRuns?state=success", headers=h).status_code == 200


def test_a_pool_is_created_once_and_patched_as_airflow_does(web_app: Web) -> None:
    c, op = web_app.app.test_client(), web_app.auth("Op")
    assert c.post("/api/v1/pools", json={"name": "db", "slots": 2}, headers=op).status_code == 201
    again = c.post("/api/v1/pools", json={"name": "db", "slots": 3}, headers=op)
    assert again.status_code == 409 and "PATCH" in again.get_json()["detail"]
    whole = {"name": "db", "slots": 4, "description": "d", "include_deferred": False}
    masked = c.patch("/api/v1/pools/db?update_mask=slots", json=whole, headers=op).get_json()
    assert (masked["slots"], masked["description"]) == (4, "")  # only the masked field
    renamed = c.patch("/api/v1/pools/db", json={"name": "other"}, headers=op)
    assert renamed.status_code == 400 and renamed.get_json()["field"] == "name"
    deferred = c.post(
        "/api/v1/pools", json={**whole, "name": "x", "include_deferred": True}, headers=op
    )
    assert deferred.status_code == 400 and deferred.get_json()["field"] == "include_deferred"


def test_lists_are_ordered_and_filtered_as_airflow_asks(web_app: Web) -> None:
    c, h = web_app.app.test_client(), web_app.auth("Op")
    for run_id in ("b", "a", "c"):
        c.post("/api/v1/dags/d/dagRuns", json={"dag_run_id": run_id}, headers=h)
    runs = "/api/v1/dags/d/dagRuns"
    by_id = c.get(f"{runs}?order_by=dag_run_id", headers=h).get_json()["dag_runs"]
    assert [r["dag_run_id"] for r in by_id] == ["a", "b", "c", "r1"]
    newest = c.get(runs, headers=h).get_json()["dag_runs"]  # the default: newest first
    assert [r["dag_run_id"] for r in newest] == ["c", "a", "b", "r1"]
    started = c.get(f"{runs}?order_by=-start_date", headers=h).get_json()["dag_runs"]
    assert started[0]["dag_run_id"] == "r1"  # the queued ones have no start: last
    both = c.get(f"{runs}?state=queued&state=running", headers=h).get_json()
    assert both["total_entries"] == 4
    assert c.get(f"{runs}?state=running", headers=h).get_json()["total_entries"] == 1
    bad = c.get(f"{runs}?order_by=color", headers=h)
    assert bad.status_code == 400 and bad.get_json()["field"] == "order_by"
    tis = c.get(f"{runs}/r1/taskInstances?order_by=-task_id", headers=h).get_json()
    assert [t["task_id"] for t in tis["task_instances"]] == ["transform", "load", "extract"]
    oldest = c.get("/api/v1/eventLogs?order_by=event_log_id&limit=2", headers=h).get_json()
    ids = [e["event_log_id"] for e in oldest["event_logs"]]
    assert ids == sorted(ids) and len(ids) == 2
