"""Following work from the command line: an attempt's log as it is written, a run until it
ends. Both poll the metastore (every `POLL_S`), so they work from any host that reaches it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from haflow.core.states import TaskState

if TYPE_CHECKING:
    from haflow.metastore.repository import Repository

POLL_S = 0.5


def follow_log(
    repo: Repository,
    dag_id: str,
    run_id: str,
    task_id: str,
    attempt: int | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print attempt `attempt` (default: the latest, or the first once queued) of the task
    instance as it is written, until it ends; returns the attempt's end state ('' when the
    task instance finished without running it, e.g. upstream failed)."""
    ti = repo.history.task_instance(dag_id, run_id, task_id)
    number = attempt or max(ti.attempt, 1)
    while ti.attempt < number:  # not queued yet
        if TaskState(ti.state).finished:
            click.echo(f"{task_id} ended {ti.state} without attempt {number}", err=True)
            return ""
        sleep(POLL_S)
        ti = repo.history.task_instance(dag_id, run_id, task_id)
    cursor = 0
    while True:
        page = repo.history.log_since(ti.id, number, cursor)
        if page.content:
            click.echo(page.content, nl=False)
        cursor = page.cursor
        if page.ended:
            break
        sleep(POLL_S)
    state = next((a.state for a in repo.history.attempts(ti.id) if a.attempt == number), "gone")
    click.echo(f"attempt {number} of {task_id} ended {state}", err=True)
    return state


def wait_for_run(
    repo: Repository,
    dag_id: str,
    run_id: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> str:
    """Show the run's task states each time they change, until it ends; returns its state."""
    started = monotonic()
    shown = ""
    while True:
        run = repo.runs.get(dag_id, run_id)
        tis = repo.history.task_instances(dag_id, run_id)
        counts = Counter(t.state for t in tis)
        line = f"{run.state}: " + (
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no task started yet"
        )
        if line != shown:
            click.echo(f"[{monotonic() - started:7.1f} s] {line}", err=True)
            shown = line
        if run.state in ("success", "failed"):
            failed = [t.task_id for t in tis if t.state == TaskState.FAILED]
            if failed:
                click.echo(f"failed: {', '.join(failed)}", err=True)
            return str(run.state)
        sleep(POLL_S)
