"""The worker's side of the liveness protocol over fakes: the self-fence window counts from
the claim's send (the metastore stamps the first heartbeat later), and an attempt that is past
its window once claimed is not started at all, nor reported. And the attempt's child loads the
DAG's own file: a file that fails or hangs at import fails that attempt, with the cause in its
log, and no other file of the folder is imported."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from haflow.core.attempt_end import Ending
from haflow.dag.loader import locate
from haflow.errors import BackendUnavailable
from haflow.metastore.records import AttemptRef
from haflow.worker.process import Outcome
from haflow.worker.runner import AttemptRunner, RunnerConfig
from tests.fakes import Clock, FakeAttemptRepo

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CFG = RunnerConfig(heartbeat_sec=60.0, timeout=8.0, self_fence_margin=2.0)  # W = 6 s


DAG_FILE = """
from datetime import datetime
from pathlib import Path
from haflow.dag import DAG, PythonTask

with DAG("d", start_date=datetime(2026, 1, 1)):
    PythonTask("t", python_callable=lambda: Path({marker!r}).write_text("ran"))
"""


class Listener:
    """Records why attempts were abandoned (not reported)."""

    def __init__(self) -> None:
        self.gave_up: list[str] = []

    def claimed(self, c: Any) -> None:
        pass

    def claim_rejected(self, ref: Any) -> None:
        pass

    def finished(self, *a: Any) -> None:
        pass

    def abandoned(self, c: Any, why: str, took: float) -> None:
        self.gave_up.append(why)


_MADE: list[AttemptRunner] = []


@pytest.fixture(autouse=True)
def _close_runners() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().close()  # their warm processes


def _runner(
    tmp_path: Path,
    claim_takes: float,
    source: str = DAG_FILE,
    timeout_s: float | None = None,
    task_id: str = "t",
    cfg: RunnerConfig = CFG,
) -> tuple[AttemptRunner, FakeAttemptRepo, Listener, Path]:
    marker = tmp_path / "ran"
    dags = tmp_path / "dags"
    dags.mkdir(parents=True)
    (dags / "d.py").write_text(source.format(marker=str(marker)))
    # a file beside it that must never be imported by this attempt
    (dags / "other.py").write_text(f"open({str(tmp_path / 'other-imported')!r}, 'w')\n")
    clock = Clock()
    repo = FakeAttemptRepo(clock, claim_takes, str(dags / "d.py"), timeout_s, task_id)
    listener = Listener()
    runner = AttemptRunner(
        repo,  # type: ignore[arg-type]
        dags,
        "w1",
        cfg,
        clock=lambda: NOW,
        monotonic=clock,
        listener=listener,  # type: ignore[arg-type]
    )
    _MADE.append(runner)
    return runner, repo, listener, marker


def test_a_claim_answered_after_the_self_fence_window_is_never_started(tmp_path: Path) -> None:
    """The claim's response came 6.5 s after it was sent: the leader may reclaim at 6 + 1 s
    after the stamp, so the worker must not start what may already be another's."""
    runner, repo, listener, marker = _runner(tmp_path, claim_takes=6.5)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "cancelled"
    assert not marker.exists()
    assert repo.reports == []  # not ours to report: the leader reclaims it
    assert listener.gave_up == ["self_fenced"]


def test_a_claim_answered_in_time_runs_and_is_reported(tmp_path: Path) -> None:
    runner, repo, listener, marker = _runner(tmp_path, claim_takes=0.5)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "success"
    assert marker.read_text() == "ran"
    assert repo.reports == [Ending.SUCCESS]
    assert listener.gave_up == []
    assert not (tmp_path / "other-imported").exists()


def test_a_claim_cut_off_by_a_broken_connection_is_made_once_more(tmp_path: Path) -> None:
    runner, repo, _, marker = _runner(tmp_path, claim_takes=0.1)
    claim, calls = repo.attempts.claim, []

    def flaky(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise BackendUnavailable("metastore connection lost: server closed the connection")
        return claim(*args)

    repo.attempts.claim = flaky  # type: ignore[method-assign,assignment]
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "success"
    assert len(calls) == 2 and marker.read_text() == "ran"
    assert repo.reports == [Ending.SUCCESS]


def test_a_file_that_fails_at_import_fails_its_attempt_with_the_cause_in_its_log(
    tmp_path: Path,
) -> None:
    source = "import haflow_no_such_module\n" + DAG_FILE
    runner, repo, _, marker = _runner(tmp_path, claim_takes=0.1, source=source)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "failed"
    assert repo.reports == [Ending.FAILED]
    assert "cannot load DAG file" in repo.logs[0]
    assert "No module named 'haflow_no_such_module'" in repo.logs[0]
    assert not marker.exists()


def test_a_file_that_hangs_at_import_times_its_attempt_out(tmp_path: Path) -> None:
    source = "import time\ntime.sleep(60)\n" + DAG_FILE
    runner, repo, _, _ = _runner(tmp_path, claim_takes=0.1, source=source, timeout_s=1.0)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "timed_out"
    assert repo.reports == [Ending.TIMED_OUT]
    assert repo.reasons[0] == "execution timeout of 1 s exceeded"  # the task's, not what was left


def test_a_dag_gone_from_its_file_fails_with_a_clear_reason(tmp_path: Path) -> None:
    source = DAG_FILE.replace('DAG("d"', 'DAG("renamed"')
    runner, repo, _, _ = _runner(tmp_path, claim_takes=0.1, source=source)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "failed"
    assert "DAG 'd' is no longer defined in" in repo.logs[0]


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ("/elsewhere/dags/team/etl.py", "team/etl.py"),  # the folder lives elsewhere here
        ("/elsewhere/dags/etl.py", "etl.py"),
        ("/elsewhere/dags/missing.py", None),  # left as recorded: the load says what is wrong
    ],
)
def test_locate_finds_the_file_under_this_nodes_folder(
    tmp_path: Path, recorded: str, expected: str | None
) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "etl.py").write_text("")
    (tmp_path / "etl.py").write_text("")
    found = locate(recorded, tmp_path)
    assert found == (recorded if expected is None else str(tmp_path / expected))


ENV_DAG = """
import json, os
from datetime import datetime
from pathlib import Path
from haflow.dag import DAG, BashTask, PythonTask

ENV = os.environ
with DAG("d", start_date=datetime(2026, 1, 1)):
    PythonTask("t", python_callable=lambda: Path({marker!r}).write_text(json.dumps({{**ENV}})))
    BashTask("b", bash_command="env > {marker}.bash", env={{"OWN": "mine", "PATH": "/bin"}})
"""


def test_a_task_sees_the_allow_listed_environment_and_none_of_the_workers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker holds the metastore's credentials (HAFLOW__* settings) and whatever else its
    environment carries; a task sees only `[worker] task_env_allowlist` (LC_* here, a
    pattern), haflow's context and its own variables, never a HAFLOW__ setting."""
    monkeypatch.setenv("HAFLOW__CORE__SQL_ALCHEMY_CONN", "postgresql://haflow:s3cret@db/haflow")
    monkeypatch.setenv("HAFLOW__WEBSERVER__SECRET_KEY", "k" * 40)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-only")
    monkeypatch.setenv("LC_TIME", "C")
    cfg = replace(CFG, task_env=("PATH", "LC_*", "HAFLOW__*"))  # HAFLOW__ never passes
    runner, _repo, _listener, marker = _runner(tmp_path / "py", 0.1, ENV_DAG, cfg=cfg)
    assert runner.run(AttemptRef(1, 1, 1, "default")) == "success"
    seen = json.loads(marker.read_text())
    assert seen["LC_TIME"] == "C" and seen["HAFLOW_ATTEMPT"] == "1" and "PATH" in seen
    assert not [k for k in seen if k.startswith("HAFLOW__") or k == "AWS_SECRET_ACCESS_KEY"]

    runner, _repo, _listener, marker = _runner(tmp_path / "sh", 0.1, ENV_DAG, task_id="b", cfg=cfg)
    assert runner.run(AttemptRef(2, 1, 1, "default")) == "success"
    text = Path(f"{marker}.bash").read_text()
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert env["OWN"] == "mine" and env["PATH"] == "/bin" and env["LC_TIME"] == "C"
    assert env["HAFLOW_TASK_ID"] == "b"
    assert not [k for k in env if k.startswith("HAFLOW__") or k == "AWS_SECRET_ACCESS_KEY"]


def test_tasks_test_builds_the_same_environment_for_bash_and_python_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`haflow tasks test` runs a task here, as a worker would: the same allow-list, for a
    Python task (its forked child trades its environment) as for a bash one."""
    from haflow.dag.loader import load_dag_file
    from haflow.worker.dryrun import test_task

    monkeypatch.setenv("HAFLOW__CORE__SQL_ALCHEMY_CONN", "postgresql://haflow:s3cret@db/haflow")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-only")
    monkeypatch.setenv("LC_TIME", "C")
    marker = tmp_path / "ran"
    (tmp_path / "d.py").write_text(ENV_DAG.format(marker=str(marker)))
    (dag,), error = load_dag_file(str(tmp_path / "d.py"))
    assert error is None
    allow = ("PATH", "LC_*", "HAFLOW__*")
    out: list[str] = []
    assert test_task(dag.tasks["t"], {}, out.append, allow) is Outcome.SUCCESS
    assert test_task(dag.tasks["b"], {}, out.append, allow) is Outcome.SUCCESS
    seen = json.loads(marker.read_text())
    text = Path(f"{marker}.bash").read_text()
    bash = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    for env in (seen, bash):
        assert env["LC_TIME"] == "C" and env["HAFLOW_ATTEMPT"] == "1"
        assert not [k for k in env if k.startswith("HAFLOW__") or k == "AWS_SECRET_ACCESS_KEY"]
    assert bash["OWN"] == "mine"
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "operator-only"  # this process keeps its own
