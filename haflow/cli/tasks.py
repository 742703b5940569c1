"""`haflow tasks ...`: list, state, clear, mark, logs, result, test."""

from __future__ import annotations

import json
import sys

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.follow import follow_log
from haflow.cli.output import emit, output_option
from haflow.core.clearing import ClearScope
from haflow.core.clock import utcnow
from haflow.core.states import TaskState
from haflow.errors import NotFound

# The DAG loader and the dry-run worker are imported by the commands that use them.


@click.group()
def tasks() -> None:
    """Tasks and task instances: list, state, clear, logs, test."""


@tasks.command("list")
@click.argument("dag_id")
@output_option
@pass_ctx
def list_(ctx: CliContext, dag_id: str, output: str) -> None:
    """List DAG_ID's tasks in dependency order (read from the DAGs folder)."""
    from haflow.dag.loader import DagCache

    dag = DagCache(ctx.settings.core.dags_folder).get(dag_id)
    rows = []
    for tid in dag.topological_order():
        t = dag.tasks[tid]
        rows.append(
            {
                "task_id": tid,
                "kind": type(t).__name__,
                "upstream": ",".join(sorted(t.upstream_task_ids)),
                "trigger_rule": t.trigger_rule.value,
                "retries": t.retries,
                "queue": t.queue,
            }
        )
    emit(rows, ["task_id", "kind", "upstream", "trigger_rule", "retries", "queue"], output)


@tasks.command()
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id", required=False)
@output_option
@pass_ctx
def state(ctx: CliContext, dag_id: str, run_id: str, task_id: str | None, output: str) -> None:
    """Show the state of TASK_ID (or of every task) in run RUN_ID."""
    tis = ctx.repo.history.task_instances(dag_id, run_id)
    if not tis:
        ctx.repo.runs.get(dag_id, run_id)
    if task_id is not None:
        tis = [ti for ti in tis if ti.task_id == task_id]
        if not tis:
            raise NotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")
    rows = [
        {
            "task_id": t.task_id,
            "state": t.state,
            "attempt": t.attempt,
            "worker": t.worker_id,
            "started_at": t.started_at,
            "ended_at": t.ended_at,
        }
        for t in tis
    ]
    emit(rows, ["task_id", "state", "attempt", "worker", "started_at", "ended_at"], output)


@tasks.command()
@click.argument("dag_id")
@click.argument("run_id")
@click.option("--task", "-t", "task_ids", multiple=True, help="Only these tasks (repeatable).")
@click.option("--downstream", "-d", is_flag=True, help="With every task downstream of them.")
@click.option("--upstream", "-u", is_flag=True, help="With every task upstream of them.")
@click.option("--only-failed", "-f", is_flag=True, help="Only those failed or upstream_failed.")
@click.option("--dry-run", is_flag=True, help="Say what would be cleared; change nothing.")
@pass_ctx
def clear(
    ctx: CliContext,
    dag_id: str,
    run_id: str,
    task_ids: tuple[str, ...],
    downstream: bool,
    upstream: bool,
    only_failed: bool,
    dry_run: bool,
) -> None:
    """Reset finished task instances of RUN_ID so they run again (all of them, or those of
    --task, with their downstream or upstream tasks if asked); the run runs again."""
    scope = ClearScope(downstream=downstream, upstream=upstream, only_failed=only_failed)
    ids = ctx.repo.runs.clear(dag_id, run_id, task_ids, utcnow(), scope, dry_run=dry_run)
    verb = "would clear" if dry_run else "cleared"
    listed = f": {', '.join(ids)}" if ids else ""
    click.echo(f"{verb} {len(ids)} task instance(s) of {dag_id} {run_id}{listed}")


@tasks.command()
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.argument("state", type=click.Choice(["success", "failed"]))
@pass_ctx
def mark(ctx: CliContext, dag_id: str, run_id: str, task_id: str, state: str) -> None:
    """Mark TASK_ID of RUN_ID success or failed (a queued or running attempt is stopped); the
    run goes on from there, and runs again if it had ended."""
    changed = ctx.repo.runs.mark_task(dag_id, run_id, task_id, TaskState(state), utcnow())
    click.echo(f"{task_id} of {dag_id} {run_id} {'marked' if changed else 'already'} {state}")


@tasks.command()
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option("--attempt", type=int, default=None, help="Attempt number (default the latest).")
@click.option(
    "--follow", "-f", is_flag=True, help="Print the log as it is written, until the attempt ends."
)
@pass_ctx
def logs(
    ctx: CliContext, dag_id: str, run_id: str, task_id: str, attempt: int | None, follow: bool
) -> None:
    """Print the log of an attempt, as stored in the metastore (with --follow, as it grows:
    waits for the attempt to be queued, exits when it ends)."""
    if follow:
        follow_log(ctx.repo, dag_id, run_id, task_id, attempt)
        return
    ti = ctx.repo.history.task_instance(dag_id, run_id, task_id)
    number = attempt or ti.attempt
    if number < 1 or number > ti.attempt:
        raise NotFound(f"{task_id} of {run_id} has attempts 1..{ti.attempt}, not {number}")
    click.echo(ctx.repo.history.logs(ti.id, number), nl=False)


@tasks.command()
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@pass_ctx
def result(ctx: CliContext, dag_id: str, run_id: str, task_id: str) -> None:
    """Print what TASK_ID of RUN_ID returned (JSON): the result of the attempt it succeeded
    with; exits 1 if it has none (not succeeded, or returned nothing)."""
    from haflow.metastore.records import result_of

    ti = ctx.repo.history.task_instance(dag_id, run_id, task_id)
    text = result_of(ti, ctx.repo.history.attempts(ti.id))
    if text is None:
        click.echo(f"{task_id} of {dag_id} {run_id} has no result (state {ti.state})", err=True)
        sys.exit(1)
    click.echo(json.dumps(json.loads(text), indent=2, ensure_ascii=False))


@tasks.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.option("--conf", "-c", default=None, help="JSON object handed to the task.")
@pass_ctx
def test(ctx: CliContext, dag_id: str, task_id: str, conf: str | None) -> None:
    """Run one task here and now, printing its output, recording nothing."""
    from haflow.dag.loader import DagCache
    from haflow.worker.dryrun import parse_conf, test_task
    from haflow.worker.process import Outcome

    task = DagCache(ctx.settings.core.dags_folder).get(dag_id).task(task_id)
    if (
        test_task(
            task,
            parse_conf(conf),
            click.echo,
            ctx.settings.worker.task_env,
            max_result_bytes=ctx.settings.worker.max_result_bytes,
            secrets=ctx.secrets(),
        )
        is not Outcome.SUCCESS
    ):
        sys.exit(1)
