"""Sensors: their arguments, their pokes, and how the runner judges a poke (done, not yet,
timed out, failed upstream) and what a rescheduled attempt makes of its task instance."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from haflow import DAG, ExternalRunSensor, FileSensor, PythonSensor, SqlSensor
from haflow.core.attempt_end import DEFAULT_POLICY, Ending, Tally, after_attempt
from haflow.core.states import AttemptState, TaskState
from haflow.errors import DagDefinitionError
from haflow.metastore.records import ClaimedAttempt
from haflow.worker.files import prepare
from haflow.worker.sensing import Poke, SensorFailed, judge, read_poke

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def dag() -> DAG:
    return DAG("s", fileloc="/dags/s.py")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filepath": "relative/x"}, "filepath must be an absolute path"),
        ({"filepath": "/x", "mode": "sometimes"}, "mode must be 'poke' or 'reschedule'"),
        ({"filepath": "/x", "poke_interval": 0}, "poke_interval must be above 0"),
        ({"filepath": "/x", "timeout": -1}, "timeout must not be negative"),
    ],
)
def test_bad_sensor_arguments_name_the_dag_task_and_value(
    kwargs: dict[str, Any], message: str
) -> None:
    with dag(), pytest.raises(DagDefinitionError, match=message) as err:
        FileSensor("wait", **kwargs)
    assert "DAG 's' in /dags/s.py, task 'wait'" in str(err.value)


def test_sql_and_external_sensors_check_their_own_arguments() -> None:
    with dag():
        with pytest.raises(DagDefinitionError, match="exactly one of conn"):
            SqlSensor("q", "select 1")
        with pytest.raises(DagDefinitionError, match="both allowed and failed"):
            ExternalRunSensor("e", "other", allowed_states=["failed"])


def test_file_sql_and_python_pokes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as c:
        c.execute("create table ready (n int)")
    with dag():
        file = FileSensor("f", filepath=str(tmp_path / "in" / "*.csv"), mode="reschedule")
        sql = SqlSensor("q", "select count(*) from ready", conn_id="wh")
        python = PythonSensor("p", python_callable=lambda ctx: ctx["conf"].get("go"))
    monkeypatch.setenv("HAFLOW_CONN_WH", f"sqlite:///{db}")
    assert not file.poke({}) and not sql.poke({}) and not python.poke({"conf": {}})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1")
    with sqlite3.connect(db) as c:
        c.execute("insert into ready values (1)")
    assert file.poke({}) and sql.poke({}) and python.poke({"conf": {"go": 1}})
    assert file.sensing() == {"poke_interval": 60.0, "timeout": 604800.0, "mode": "reschedule"}
    monkeypatch.delenv("HAFLOW_CONN_WH")
    with pytest.raises(RuntimeError, match=r"\$HAFLOW_CONN_WH is not set"):
        sql.poke({})


def claimed(
    start: datetime | None = T0, end: datetime | None = T0 + timedelta(days=1)
) -> ClaimedAttempt:
    return ClaimedAttempt(1, 3, "d", "r", "t", "/d.py", None, {}, start, end)


def poke(done: bool = False, timeout: float = 60, external: dict[str, Any] | None = None) -> Poke:
    return Poke(done, 5.0, timeout, "reschedule", external)


def test_the_timeout_counts_from_the_first_poke() -> None:
    said: list[str] = []
    assert judge(poke(done=True), claimed(), T0, T0 + timedelta(hours=9), None, said.append)
    assert not judge(poke(), claimed(), T0, T0 + timedelta(seconds=59), None, said.append)
    with pytest.raises(SensorFailed, match=r"timed out.*timeout of 60 s"):
        judge(poke(), claimed(), T0, T0 + timedelta(seconds=60), None, said.append)


def test_an_external_check_reads_the_same_interval_shifted_by_the_delta() -> None:
    asked: list[tuple[Any, ...]] = []
    states = iter([None, "running", "success", "failed"])

    def state_of(*args: Any) -> str | None:
        asked.append(args)
        return next(states)

    spec = {
        "external_dag_id": "up",
        "external_task_id": None,
        "allowed_states": ["success"],
        "failed_states": ["failed"],
        "execution_delta_s": 3600,
    }
    said: list[str] = []
    for expected in (False, False, True):
        assert judge(poke(external=spec), claimed(), T0, T0, state_of, said.append) is expected
    with pytest.raises(SensorFailed, match=r"DAG 'up' for the interval ending .* is failed"):
        judge(poke(external=spec), claimed(), T0, T0, state_of, said.append)
    hour = timedelta(hours=1)
    assert asked[0] == ("up", None, T0 - hour, T0 + timedelta(days=1) - hour)
    assert "no run" in said[0] and "success" in said[2]
    with pytest.raises(SensorFailed, match="has none \\(a manual run\\)"):
        judge(poke(external=spec), claimed(None, None), T0, T0, state_of, said.append)
    with pytest.raises(SensorFailed, match="needs the metastore"):
        judge(poke(external=spec), claimed(), T0, T0, None, said.append)


def test_a_poke_file_is_read_once(tmp_path: Path) -> None:
    files = prepare(tmp_path, 1, 1, {})
    assert read_poke(files) is None
    files.write_poke(False, {"poke_interval": 2.0, "timeout": 9.0, "mode": "poke"})
    assert read_poke(files) == Poke(False, 2.0, 9.0, "poke", None)
    assert read_poke(files) is None
    files.write_poke({"external_dag_id": "up"}, {"poke_interval": 1, "timeout": 1, "mode": "poke"})
    got = read_poke(files)
    assert got is not None and not got.done and got.external == {"external_dag_id": "up"}


def test_a_rescheduled_attempt_uses_no_retry_and_is_due_at_its_poke_time() -> None:
    tally = Tally(failures=1, losses=1, retries=1, retry_delay_s=300)
    at = T0 + timedelta(seconds=30)
    nxt = after_attempt(tally, Ending.RESCHEDULED, DEFAULT_POLICY, T0, poke_at=at)
    assert (nxt.state, nxt.failures, nxt.losses, nxt.next_try_at) == (
        TaskState.UP_FOR_RESCHEDULE,
        1,
        1,
        at,
    )
    assert Ending.RESCHEDULED.attempt_state is AttemptState.RESCHEDULED
