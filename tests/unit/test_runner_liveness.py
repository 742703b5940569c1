"""The worker's side of the liveness protocol over fakes: the self-fence window counts from
the claim's send (the metastore stamps the first heartbeat later), and an attempt that is past
its window once its DAG has loaded is not started at all, nor reported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haflow.core.attempt_end import Ending
from haflow.dag import DAG
from haflow.dag.tasks import PythonTask
from haflow.metastore.records import AttemptRef, ClaimedAttempt
from haflow.worker.runner import AttemptRunner, RunnerConfig

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CFG = RunnerConfig(heartbeat_sec=60.0, timeout=8.0, self_fence_margin=2.0)  # W = 6 s


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Repo:
    """Claims succeed after `claim_takes` seconds of the fake clock; reports are recorded."""

    def __init__(self, clock: Clock, claim_takes: float) -> None:
        self.clock = clock
        self.claim_takes = claim_takes
        self.reports: list[Ending] = []

    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt:
        self.clock.t += self.claim_takes
        return ClaimedAttempt(ref.ti_id, ref.attempt, "d", "r", "t", "/d.py", None, {}, None, None)

    def finish_attempt(
        self, ti_id: int, attempt: int, worker_id: str, ending: Ending, *a: Any, **kw: Any
    ) -> bool:
        self.reports.append(ending)
        return True

    def append_log(self, *a: Any) -> None:
        pass

    def heartbeat_attempt(self, *a: Any) -> bool:
        return True


class Dags:
    def __init__(self, task: PythonTask) -> None:
        self.task_ = task

    def get(self, dag_id: str) -> Any:
        return self

    def task(self, task_id: str) -> PythonTask:
        return self.task_


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


def _runner(tmp_path: Path, claim_takes: float) -> tuple[AttemptRunner, Repo, Listener, Path]:
    marker = tmp_path / "ran"
    clock = Clock()
    repo = Repo(clock, claim_takes)
    with DAG("d", start_date=NOW):
        task = PythonTask("t", python_callable=lambda: marker.write_text("ran"))
    listener = Listener()
    runner = AttemptRunner(
        repo,  # type: ignore[arg-type]
        Dags(task),  # type: ignore[arg-type]
        "w1",
        CFG,
        clock=lambda: NOW,
        monotonic=clock,
        listener=listener,  # type: ignore[arg-type]
    )
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
