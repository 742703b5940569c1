"""A scheduler with the local executor serves the metrics of its own pool processes: the
attempts they run are counted on the scheduler's endpoint (multiprocess mode, spawned children).
"""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from tests.daemons import start_haflow
from tests.integration.conftest import database_url, truncate_all
from tests.ports import free_port
from tests.waiting import wait_for

DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("lm_dag", start_date=datetime(2026, 1, 1)):
    BashTask("ok", bash_command="echo ok") >> BashTask("boom", bash_command="exit 3")
"""


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_local_executor_attempts_reach_the_schedulers_endpoint(
    tmp_path: Path, database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = database_url("sqlite", database_urls, tmp_path_factory.mktemp("sqlite"))
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "lm.py").write_text(DAG)
    port = free_port()
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": url,
        "HAFLOW__CORE__PARALLELISM": "2",
        "HAFLOW__ELECTION__MODE": "none",
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        "HAFLOW__SCHEDULER__METRICS_PORT": str(port),
    }
    engine = create_engine(url)
    truncate_all(engine)  # the session's SQLite file: no leader of an earlier test in it
    repo = Repository(engine)
    proc = start_haflow("scheduler", env=env, log=tmp_path / "scheduler.log")
    try:
        wait_for("the DAG to be parsed", lambda: bool(repo.dags.all()), 30)
        repo.runs.trigger("lm_dag", {}, utcnow(), run_id="r1")
        wait_for("the run to fail", lambda: repo.runs.get("lm_dag", "r1").state == "failed", 30)
        samples = _scrape(port)
        assert samples[("haflow_scheduler_is_leader", ())] == 1
        assert samples[("haflow_elector_mode", (("mode", "none"),))] == 1
        assert samples[("haflow_leader_elections_total", (("reason", "initial"),))] == 1
        done = "haflow_task_attempts_finished_total"
        assert samples[(done, (("state", "success"),))] == 1
        assert samples[(done, (("state", "failed"),))] == 1
        assert samples[("haflow_attempt_claims_total", (("result", "claimed"),))] == 2
        assert samples[("haflow_attempts_queued_total", ())] == 2
        assert samples[("haflow_task_duration_seconds_count", ())] == 2
        assert samples[("haflow_metastore_up", ())] == 1
        assert ("haflow_task_instances", (("state", "failed"),)) in samples
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        directories = [
            line.split("multiprocess directory ")[-1]
            for line in (tmp_path / "scheduler.log").read_text().splitlines()
            if "multiprocess directory " in line
        ]
        assert directories, "the scheduler did not say where its metric files are"
        assert all(not Path(d).exists() for d in directories), "metric files left behind"
    except BaseException:
        print((tmp_path / "scheduler.log").read_text()[-3000:])
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        repo.engine.dispose()
