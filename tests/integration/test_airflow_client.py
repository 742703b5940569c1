"""Airflow's own Python client (`apache-airflow-client` 2.x, for Airflow's stable REST API v1)
drives a real `haflow standalone` unchanged: list, get, pause and unpause a DAG, trigger with
conf, poll the run, list task instances, read a log, clear, mark state, and the health, version,
pools and import errors. Each call's answer is deserialized by the client's own models, which
refuse a wrong type, a null where none is allowed or a value off an enum, so a shape haflow
gets wrong fails here.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import airflow_client.client as ac
import pytest
from airflow_client.client.api import (
    config_api,
    dag_api,
    dag_run_api,
    event_log_api,
    import_error_api,
    monitoring_api,
    pool_api,
    task_instance_api,
    x_com_api,
)
from airflow_client.client.model.clear_dag_run import ClearDagRun
from airflow_client.client.model.clear_task_instances import ClearTaskInstances
from airflow_client.client.model.dag import DAG
from airflow_client.client.model.dag_run import DAGRun
from airflow_client.client.model.update_dag_run_state import UpdateDagRunState
from airflow_client.client.model.update_task_instance import UpdateTaskInstance
from airflow_client.client.model.update_task_state import UpdateTaskState

from tests.daemons import start_haflow, stop_group
from tests.ports import free_port, web_ready
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DAGS = """\
from datetime import datetime

from haflow.dag import DAG, PythonTask


def say(context):
    print(f"hello {context['conf'].get('who', 'nobody')}")
    return 42


def fail():
    raise RuntimeError("this one fails")


with DAG("compat", schedule="*/5 * * * *", start_date=datetime(2026, 1, 1), catchup=False,
         tags=["etl", "compat"], default_args={"retries": 0}):
    PythonTask("say", python_callable=say) >> PythonTask("after", python_callable=say)

with DAG("compat_failing", schedule=None, start_date=datetime(2026, 1, 1),
         default_args={"retries": 0}):
    PythonTask("fail", python_callable=fail)
"""
BROKEN = "import nowhere_to_be_found\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An ApiClient of a fresh standalone, logged in with Basic auth as its admin."""
    home = tmp_path_factory.mktemp("standalone") / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "compat.py").write_text(DAGS)
    (home / "dags" / "broken.py").write_text(BROKEN)
    port = free_port()
    env = {
        **os.environ,
        "HAFLOW_HOME": str(home),
        "HAFLOW__WEBSERVER__PORT": str(port),
        "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1",
    }
    env.pop("HAFLOW__WEBSERVER__SECRET_KEY", None)
    env.pop("HAFLOW__CORE__FERNET_KEY", None)
    proc = start_haflow("standalone", env=env, log=home.parent / "standalone.log")
    try:
        wait_for("the standalone's web UI", lambda: web_ready(port), timeout=90)
        password = (home / "standalone_admin_password.txt").read_text().strip()
        conf = ac.Configuration(
            host=f"http://127.0.0.1:{port}/api/v1", username="admin", password=password
        )
        with ac.ApiClient(conf) as api:
            yield api
    finally:
        stop_group(proc)


def test_health_and_version_need_no_login(client: Any) -> None:
    monitoring = monitoring_api.MonitoringApi(client)
    health = monitoring.get_health()
    assert str(health.metadatabase.status) == "healthy"
    wait_for(
        "a healthy scheduler",
        lambda: str(monitoring.get_health().scheduler.status) == "healthy",
        60,
    )
    assert monitoring.get_version().version
    host = client.configuration.host
    for path in ("/health", "/version"):  # no credentials at all
        with urllib.request.urlopen(host + path, timeout=10) as resp:
            assert resp.status == 200, path


def test_dags_listed_got_paused_and_unpaused(client: Any) -> None:
    dags = dag_api.DAGApi(client)
    wait_for("the DAGs parsed", lambda: len(dags.get_dags().dags) >= 2, 60)
    listed = dags.get_dags(tags=["compat"])
    assert [d.dag_id for d in listed.dags] == ["compat"] and listed.total_entries == 1
    dag = dags.get_dag("compat")
    assert [t.name for t in dag.tags] == ["etl", "compat"]
    assert dag.schedule_interval.value == "*/5 * * * *"  # a CronExpression
    assert dag.next_dagrun is not None and dag.is_active
    paused = dags.patch_dag("compat", DAG(is_paused=True), update_mask=["is_paused"])
    assert paused.is_paused is True
    assert [d.dag_id for d in dags.get_dags(paused=True).dags] == ["compat"]
    assert dags.patch_dag("compat", DAG(is_paused=False)).is_paused is False


def _finished(runs: Any, dag_id: str, run_id: str) -> Any:
    """The run once it has ended (waited for)."""

    def ended() -> bool:
        state = runs.get_dag_run(dag_id, run_id).state
        return str(state) in ("success", "failed")

    wait_for(f"{run_id} to finish", ended, 120, interval=0.5)
    return runs.get_dag_run(dag_id, run_id)


def test_a_triggered_run_polled_its_task_instances_and_log_read(client: Any) -> None:
    dags, runs = dag_api.DAGApi(client), dag_run_api.DAGRunApi(client)
    tis = task_instance_api.TaskInstanceApi(client)
    wait_for("compat parsed", lambda: dags.get_dag("compat").is_active, 60)
    made = runs.post_dag_run("compat", DAGRun(dag_run_id="by_client", conf={"who": "airflow"}))
    assert made.dag_run_id == "by_client" and made.conf == {"who": "airflow"}
    assert made.external_trigger is True and made.logical_date is not None
    _finished(runs, "compat", "by_client")
    run = runs.get_dag_run("compat", "by_client")
    assert str(run.state) == "success" and run.end_date >= run.start_date
    listed = runs.get_dag_runs("compat")
    assert "by_client" in [r.dag_run_id for r in listed.dag_runs]
    every = runs.get_dag_runs("~")  # every DAG's runs, as in Airflow
    assert every.total_entries >= listed.total_entries
    instances = tis.get_task_instances("compat", "by_client").task_instances
    assert {(t.task_id, str(t.state)) for t in instances} == {
        ("say", "success"),
        ("after", "success"),
    }
    say = tis.get_task_instance("compat", "by_client", "say")
    assert say.try_number == 1 and say.hostname and say.duration is not None
    log = tis.get_log("compat", "by_client", "say", 1, full_content=True)
    assert "hello airflow" in log.content
    rest = tis.get_log("compat", "by_client", "say", 1, token=log.continuation_token)
    assert "hello airflow" not in rest.content  # only what came after the token
    xcoms = x_com_api.XComApi(client)  # a task's result is its XCom return_value
    listed = xcoms.get_xcom_entries("compat", "by_client", "say")
    assert [x.key for x in listed.xcom_entries] == ["return_value"]
    assert xcoms.get_xcom_entry("compat", "by_client", "say", "return_value").value == "42"


def test_a_failed_run_cleared_and_marked(client: Any) -> None:
    runs, tis = dag_run_api.DAGRunApi(client), task_instance_api.TaskInstanceApi(client)
    wait_for("compat_failing parsed", lambda: dag_api.DAGApi(client).get_dag("compat_failing"), 60)
    runs.post_dag_run("compat_failing", DAGRun(dag_run_id="fails"))
    assert str(_finished(runs, "compat_failing", "fails").state) == "failed"
    dry = runs.clear_dag_run("compat_failing", "fails", ClearDagRun(dry_run=True))
    assert [t["task_id"] for t in dry["task_instances"]] == ["fail"]
    assert str(tis.get_task_instance("compat_failing", "fails", "fail").state) == "failed"
    runs.clear_dag_run("compat_failing", "fails", ClearDagRun(dry_run=False))
    assert str(_finished(runs, "compat_failing", "fails").state) == "failed"  # failed again
    assert tis.get_task_instance("compat_failing", "fails", "fail").try_number == 2
    marked = tis.patch_task_instance(
        "compat_failing",
        "fails",
        "fail",
        UpdateTaskInstance(new_state=UpdateTaskState("success"), dry_run=False),
    )
    assert marked.task_id == "fail"
    assert str(tis.get_task_instance("compat_failing", "fails", "fail").state) == "success"
    back = runs.update_dag_run_state("compat_failing", "fails", UpdateDagRunState(state="failed"))
    assert str(back.state) == "failed"


def test_pools_and_import_errors(client: Any) -> None:
    pools = pool_api.PoolApi(client).get_pools()
    assert "default_pool" in [p.name for p in pools.pools]
    errors = import_error_api.ImportErrorApi(client)
    wait_for("broken.py's import error", lambda: errors.get_import_errors().total_entries, 60)
    (error,) = errors.get_import_errors().import_errors
    assert error.filename.endswith("broken.py") and "nowhere_to_be_found" in error.stack_trace


def test_a_dags_details_and_tasks(client: Any) -> None:
    dags = dag_api.DAGApi(client)
    wait_for("compat parsed", lambda: dags.get_dag("compat").is_active, 60)
    source = dags.get_dag_source(dags.get_dag("compat").file_token)
    assert 'with DAG("compat"' in source.content  # the DAG file as the scheduler stored it
    details = dags.get_dag_details("compat")
    assert details.timezone == "UTC" and details.catchup is False
    tasks = dags.get_tasks("compat")
    assert [t.task_id for t in tasks.tasks] == ["say", "after"]
    say = dags.get_task("compat", "say")
    assert say.downstream_task_ids == ["after"] and str(say.trigger_rule) == "all_success"
    assert say.retries == 0


def test_many_dags_paused_at_once(client: Any) -> None:
    dags = dag_api.DAGApi(client)
    wait_for("the DAGs parsed", lambda: len(dags.get_dags().dags) >= 2, 60)
    paused = dags.patch_dags("compat", DAG(is_paused=True), update_mask=["is_paused"])
    assert sorted(d.dag_id for d in paused.dags) == ["compat", "compat_failing"]
    assert all(d.is_paused for d in dags.get_dags().dags)
    dags.patch_dags("compat", DAG(is_paused=False))
    assert not any(d.is_paused for d in dags.get_dags().dags)


def test_the_failed_task_instances_of_a_dag_cleared(client: Any) -> None:
    dags, runs = dag_api.DAGApi(client), dag_run_api.DAGRunApi(client)
    wait_for("compat_failing parsed", lambda: dags.get_dag("compat_failing"), 60)
    runs.post_dag_run("compat_failing", DAGRun(dag_run_id="fails_too"))
    _finished(runs, "compat_failing", "fails_too")
    dry = dags.post_clear_task_instances(
        "compat_failing", ClearTaskInstances(dag_run_id="fails_too")
    )
    assert [(t.task_id, t.dag_run_id) for t in dry.task_instances] == [("fail", "fails_too")]
    assert str(runs.get_dag_run("compat_failing", "fails_too").state) == "failed"  # dry
    dags.post_clear_task_instances(
        "compat_failing", ClearTaskInstances(dag_run_id="fails_too", dry_run=False)
    )
    tis = task_instance_api.TaskInstanceApi(client)
    wait_for(
        "the cleared task's second try",
        lambda: tis.get_task_instance("compat_failing", "fails_too", "fail").try_number == 2,
        60,
    )


def test_config_and_event_logs(client: Any) -> None:
    config = config_api.ConfigApi(client).get_config()
    core = next(sec for sec in config.sections if sec.name == "core")
    options = {o.key: o.value for o in core.options}
    assert options["sql_alchemy_conn"] == "***" and options["executor"] == "local"
    logs = event_log_api.EventLogApi(client)
    listed = logs.get_event_logs(limit=5)
    assert listed.total_entries >= 1 and len(listed.event_logs) <= 5
    first = listed.event_logs[0]
    assert logs.get_event_log(first.event_log_id).event == first.event


def test_a_finished_run_deleted(client: Any) -> None:
    runs = dag_run_api.DAGRunApi(client)
    wait_for("compat parsed", lambda: dag_api.DAGApi(client).get_dag("compat").is_active, 60)
    runs.post_dag_run("compat", DAGRun(dag_run_id="to_delete"))
    _finished(runs, "compat", "to_delete")
    runs.delete_dag_run("compat", "to_delete")
    with pytest.raises(ac.ApiException) as gone:
        runs.get_dag_run("compat", "to_delete")
    assert gone.value.status == 404
