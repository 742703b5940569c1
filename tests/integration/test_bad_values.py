"""Bad values past their entry checks never stop a scheduler (issue 36): on a real scheduler
with its local executor, on each metastore, a manual run that took the id of a scheduled one
and a DAG whose values its metastore refuses are isolated, and the loop goes on with the other
DAGs under the same epoch. The entry checks themselves are switched off here, as a value that
slipped past them (or one no check foresaw) would be."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from haflow.core.clock import utcnow
from haflow.core.ids import check_run_id
from haflow.metastore.records import DagRecord, TaskDef
from haflow.metastore.repository import Repository
from haflow.scheduler.dags import DagRegistry
from haflow.scheduler.service import SchedulerService
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for

EVERY = """
from datetime import datetime, timedelta
from haflow.dag import DAG, BashTask

with DAG("every2s", schedule=timedelta(seconds=2), start_date=datetime(2026, 1, 1)):
    BashTask("a", bash_command="echo a")
"""

STEADY = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("steady", start_date=datetime(2026, 1, 1)):
    BashTask("a", bash_command="echo a")
"""

BAD = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("bad", start_date=datetime(2026, 1, 1)):
    BashTask("over", bash_command="echo over")
"""

LONG_QUEUE = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("long_queue", start_date=datetime(2026, 1, 1)):
    BashTask("a", bash_command="echo a", queue="q" * 150)
"""


@pytest.fixture
def running(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[SchedulerService, Repository, Path]]:
    with scheduler_thread(
        tmp_path,
        db_url,
        request.param,
        HAFLOW__CORE__PARALLELISM="2",
        HAFLOW__CORE__DAG_DIR_LIST_INTERVAL="0.5",
    ) as service:
        yield service, service.repo, tmp_path / "dags"


def _leading(service: SchedulerService, repo: Repository, dag_ids: list[str]) -> int:
    wait_for("the DAGs to be parsed", lambda: {d.dag_id for d in repo.dags.all()} >= set(dag_ids))
    wait_for("a leader", lambda: service.epoch is not None)
    assert service.epoch is not None
    return service.epoch


@pytest.mark.parametrize("running", [{"every.py": EVERY, "steady.py": STEADY}], indirect=True)
def test_a_manual_run_named_like_a_scheduled_one_renames_that_one_and_nothing_stops(
    running: tuple[SchedulerService, Repository, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, repo, _ = running
    epoch = _leading(service, repo, ["every2s", "steady"])
    monkeypatch.setattr("haflow.metastore.repository.runs.check_manual_run_id", check_run_id)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = utcnow()
    next_end = start + timedelta(seconds=2 * ((now - start).total_seconds() // 2 + 2))
    clashes = [f"scheduled__{(next_end + timedelta(seconds=2 * k)).isoformat()}" for k in range(3)]
    for run_id in clashes:
        repo.runs.trigger("every2s", {}, utcnow(), run_id=run_id)

    def renamed() -> bool:
        ids = {r.run_id: r.run_type for r in repo.runs.find("every2s", limit=50)}
        return all(ids.get(f"{c}.1") == "scheduled" for c in clashes)

    wait_for("the clashing intervals' scheduled runs, renamed", renamed, timeout=30)
    events = repo.history.events(kinds=["run.created"], dag_id="every2s")
    assert {e.run_id for e in events if "renamed_from" in e.detail} >= {f"{c}.1" for c in clashes}
    steady = repo.runs.trigger("steady", {}, utcnow())
    wait_for(
        "a run of another DAG", lambda: repo.runs.get("steady", steady.run_id).state == "success"
    )
    assert service.epoch == epoch and repo.leadership.current().epoch == epoch  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "running", [{"long_queue.py": LONG_QUEUE, "steady.py": STEADY}], indirect=True
)
def test_a_value_over_its_column_is_an_import_error_naming_the_dag_task_and_field(
    running: tuple[SchedulerService, Repository, Path],
) -> None:
    service, repo, _ = running
    _leading(service, repo, ["steady"])

    def refused() -> list[str]:
        return [e.message for e in repo.dags.import_errors() if "long_queue" in e.message]

    wait_for("the long queue's import error", refused)
    assert "task 'a': queue must be at most 100 characters, got 150" in refused()[0]
    assert "long_queue" not in {d.dag_id for d in repo.dags.all()}


@pytest.mark.parametrize("running", [{"bad.py": BAD, "steady.py": STEADY}], indirect=True)
def test_a_dag_whose_writes_the_metastore_refuses_is_set_aside_and_the_others_go_on(
    running: tuple[SchedulerService, Repository, Path],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite stores a string of any length: nothing to refuse")
    service, repo, _ = running
    epoch = _leading(service, repo, ["bad", "steady"])
    # a queue past its column, as if the parse check had let it through

    def over(d: TaskDef) -> TaskDef:
        return replace(d, queue="q" * 150) if d.task_id == "over" else d

    defs, versions = DagRegistry.task_defs, DagRegistry.version_defs
    monkeypatch.setattr(
        DagRegistry,
        "task_defs",
        lambda self: {k: [over(d) for d in v] for k, v in defs(self).items()},
    )
    monkeypatch.setattr(
        DagRegistry,
        "version_defs",
        lambda self: {k: [over(d) for d in v] for k, v in versions(self).items()},
    )
    bad = repo.runs.trigger("bad", {}, utcnow())
    steady = repo.runs.trigger("steady", {}, utcnow())
    wait_for(
        "the other DAG's run", lambda: repo.runs.get("steady", steady.run_id).state == "success"
    )

    def shown() -> list[str]:
        return [
            e.message for e in repo.dags.import_errors() if "'bad' is not scheduled" in e.message
        ]

    wait_for("the broken DAG among the import errors", shown)
    assert [e.dag_id for e in repo.history.events(kinds=["dag.broken"])] == ["bad"]
    assert repo.runs.get("bad", bad.run_id).state in ("queued", "running")  # set aside, kept
    again = repo.runs.trigger("steady", {}, utcnow())
    wait_for(
        "a later run of the other DAG",
        lambda: repo.runs.get("steady", again.run_id).state == "success",
    )
    assert service.epoch == epoch and repo.leadership.current().epoch == epoch  # type: ignore[union-attr]


@pytest.mark.parametrize("running", [{"bad.py": BAD, "steady.py": STEADY}], indirect=True)
def test_a_dag_whose_row_the_metastore_refuses_is_not_synced_and_the_others_are(
    running: tuple[SchedulerService, Repository, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The DAG sync writes each DAG under its own savepoint: one the metastore refuses (a
    number past its column, on every backend) is set aside and shown, the others sync."""
    records = DagRegistry.records

    def over(self: DagRegistry) -> list[DagRecord]:
        return [
            replace(r, max_active_runs=2**70) if r.dag_id == "bad" else r for r in records(self)
        ]

    monkeypatch.setattr(DagRegistry, "records", over)
    service, repo, _ = running
    epoch = _leading(service, repo, ["steady"])

    def shown() -> list[str]:
        return [
            e.message for e in repo.dags.import_errors() if "'bad' is not scheduled" in e.message
        ]

    wait_for("the refused DAG among the import errors", shown)
    assert "metastore refused its row" in shown()[0]
    assert [e.dag_id for e in repo.history.events(kinds=["dag.broken"])] == ["bad"]
    assert "bad" not in {d.dag_id for d in repo.dags.all()}
    steady = repo.runs.trigger("steady", {}, utcnow())
    wait_for(
        "the other DAG's run", lambda: repo.runs.get("steady", steady.run_id).state == "success"
    )
    assert service.epoch == epoch and repo.leadership.current().epoch == epoch  # type: ignore[union-attr]
