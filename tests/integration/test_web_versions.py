"""DAG code versions in the API and the UI: the versions, a version's files, the diff between
two, and the version a run runs (on each metastore)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from haflow.metastore.records import DagRecord
from tests.integration.web_fixtures import CODE, T0, Web, code_of

NEW = code_of("import helper\n# the DAG d, changed\n", helper="H = 2\n")


def _new_version(w: Web) -> None:
    d = w.repo.dags.get("d")
    record = DagRecord("d", d.fileloc, d.schedule, None, False, 16, [], "", "fp2")
    later = T0 + timedelta(minutes=1)
    w.repo.dags.sync([replace(record, code_hash=NEW.hash)], [], later, code={NEW.hash: NEW})


def test_the_api_lists_versions_serves_their_code_and_the_diff(web_app: Web) -> None:
    _new_version(web_app)
    c, auth = web_app.app.test_client(), web_app.auth("Viewer")
    listed = c.get("/api/v1/dags/d/versions", headers=auth).get_json()
    assert [(v["code_hash"], v["current"], v["runs"]) for v in listed["versions"]] == [
        (NEW.hash, True, 0),
        (CODE.hash, False, 1),
    ]
    assert listed["total_entries"] == 2
    run = c.get("/api/v1/dags/d/dagRuns/r1", headers=auth).get_json()
    assert run["code_hash"] == CODE.hash  # made before the change: it keeps its version
    old = c.get(f"/api/v1/dags/d/versions/{CODE.hash[:8]}/code", headers=auth).get_json()
    assert old["content"] == "import helper\n# the DAG d\n" and old["files"] == [
        "d.py",
        "helper.py",
    ]
    helper = c.get("/api/v1/dags/d/versions/current/code?file=helper.py", headers=auth)
    assert helper.get_json()["content"] == "H = 2\n"
    diff = c.get(f"/api/v1/dags/d/versions/{CODE.hash[:8]}/diff", headers=auth).get_json()
    assert (diff["from"], diff["to"]) == (CODE.hash, NEW.hash)
    assert "-H = 1\n+H = 2\n" in diff["diff"] and "+# the DAG d, changed" in diff["diff"]


def test_the_api_says_what_is_wrong_with_a_version(web_app: Web) -> None:
    c, auth = web_app.app.test_client(), web_app.auth("Viewer")
    bad = c.get("/api/v1/dags/d/versions/xyz/code", headers=auth)
    assert bad.status_code == 400 and bad.get_json()["field"] == "version"
    short = c.get("/api/v1/dags/d/versions/current/diff?to=abc", headers=auth)
    assert short.status_code == 400 and short.get_json()["field"] == "to"
    assert c.get("/api/v1/dags/d/versions/abcdef0/code", headers=auth).status_code == 404
    missing = c.get("/api/v1/dags/d/versions/current/code?file=nope.py", headers=auth)
    assert missing.status_code == 400 and "helper.py" in missing.get_json()["detail"]
    assert c.get("/api/v1/dags/nope/versions", headers=auth).status_code == 404


def test_the_ui_shows_a_runs_code_and_a_diff(web_app: Web) -> None:
    _new_version(web_app)
    c = web_app.login("Viewer")
    gantt = c.get("/dags/d/runs/r1/gantt").get_data(as_text=True)
    assert f'href="/dags/d/code?version={CODE.hash}"' in gantt
    page = c.get(f"/dags/d/code?version={CODE.hash}").get_data(as_text=True)
    assert "# the DAG d\n" in page and 'data-testid="versions"' in page
    helper = c.get(f"/dags/d/code?version={CODE.hash}&file=helper.py").get_data(as_text=True)
    assert "H = 1" in helper
    changes = c.get(f"/dags/d/code?version={NEW.hash}&diff={CODE.hash}").get_data(as_text=True)
    assert '<span class="add">+H = 2</span>' in changes
    assert '<span class="del">-H = 1</span>' in changes
    assert c.get("/dags/d/code?version=zz").status_code == 400
    assert 'href="/dags/d/code"' in c.get("/dags/d").get_data(as_text=True)
