"""`haflow dags ...`: list, trigger, pause, runs (and marking them), code versions, import
errors, test."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from haflow.cli.backfill import backfill
from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.follow import wait_for_run
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.core.states import RunState

if TYPE_CHECKING:
    from haflow.metastore.records import DagRow

# What only some commands need (the DAG loader, code versions, the dry-run worker) is imported
# inside them: `haflow dags list` loads no more than it uses.


@click.group()
def dags() -> None:
    """DAGs: list, trigger, pause, runs, code versions, import errors, test."""


def _next_fire(row: DagRow) -> datetime | None:
    from haflow.dag.schedule import parse_schedule

    if row.schedule is None or row.is_paused:
        return None
    sched = parse_schedule(
        row.schedule, dag_id=row.dag_id, fileloc=row.fileloc, timezone=row.timezone
    )
    return None if sched is None else sched.next_due(None, row.last_fire_at, utcnow(), False)


@dags.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List the DAGs the scheduler has parsed."""
    rows = [
        {
            "dag_id": d.dag_id,
            "schedule": d.schedule,
            "paused": d.is_paused,
            "next_run": _next_fire(d),
            "tags": ",".join(d.tags),
            "fileloc": d.fileloc,
        }
        for d in ctx.repo.dags.all()
    ]
    emit(rows, ["dag_id", "schedule", "paused", "next_run", "tags", "fileloc"], output)


def _manual_run_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A manual run's id, checked where it enters: a bad one is a usage error (exit 2)."""
    from haflow.core.ids import check_manual_run_id
    from haflow.errors import InvalidRequest

    try:
        return None if value is None else check_manual_run_id(value, "--run-id")
    except InvalidRequest as exc:
        raise click.BadParameter(
            str(exc).removeprefix("--run-id "), param_hint="--run-id"
        ) from None


@dags.command()
@click.argument("dag_id")
@click.option("--conf", "-c", default=None, help="JSON object handed to the run.")
@click.option(
    "--run-id",
    default=None,
    callback=_manual_run_id,
    help="Run id (default manual__<time>); not under the scheduler's prefixes (scheduled__ ...).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Show the run's progress until it ends; exit 0 on success, 1 on failure.",
)
@output_option
@pass_ctx
def trigger(
    ctx: CliContext, dag_id: str, conf: str | None, run_id: str | None, wait: bool, output: str
) -> None:
    """Create a manual run of DAG_ID; the scheduler starts it."""
    from haflow.worker.dryrun import parse_conf

    run = ctx.repo.runs.trigger(dag_id, parse_conf(conf), utcnow(), run_id=run_id)
    emit([_run_dict(run)], _RUN_COLUMNS, output)
    if wait and wait_for_run(ctx.repo, dag_id, run.run_id) != RunState.SUCCESS:
        sys.exit(1)


@dags.command("mark-run")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("state", type=click.Choice(["success", "failed"]))
@pass_ctx
def mark_run(ctx: CliContext, dag_id: str, run_id: str, state: str) -> None:
    """Mark RUN_ID success or failed: success marks every task instance that did not succeed
    success; failed fails those queued or running (their attempts are stopped) and skips
    those not run yet."""
    changed = ctx.repo.runs.mark(dag_id, run_id, RunState(state), utcnow())
    listed = f": {', '.join(changed)}" if changed else ""
    click.echo(f"run {run_id} of {dag_id} marked {state}; {len(changed)} task(s) changed{listed}")


@dags.command()
@click.argument("dag_id")
@click.option("--force", is_flag=True, help="Delete its queued and running runs too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: CliContext, dag_id: str, force: bool, yes: bool) -> None:
    """Delete DAG_ID's runs (with their task instances, attempts and logs), notifications and
    row; its events stay. Refused while it has queued or running runs, unless --force. A file
    still in the DAGs folder brings the DAG back at the next parse: remove the file first."""
    if not yes:
        click.confirm(f"delete DAG {dag_id} and all its runs?", abort=True)
    runs = ctx.repo.retention.delete_dag(dag_id, utcnow(), force=force)
    click.echo(f"DAG {dag_id} deleted with {runs} run(s)")


@dags.command()
@click.argument("dag_id")
@pass_ctx
def pause(ctx: CliContext, dag_id: str) -> None:
    """Pause DAG_ID: no new runs, no new task attempts."""
    ctx.repo.dags.set_paused(dag_id, True, utcnow())
    click.echo(f"DAG {dag_id} paused")


@dags.command()
@click.argument("dag_id")
@pass_ctx
def unpause(ctx: CliContext, dag_id: str) -> None:
    """Unpause DAG_ID."""
    ctx.repo.dags.set_paused(dag_id, False, utcnow())
    click.echo(f"DAG {dag_id} unpaused")


_RUN_COLUMNS = [
    "dag_id",
    "run_id",
    "run_type",
    "state",
    "conf",
    "data_interval_start",
    "data_interval_end",
    "created_at",
    "started_at",
    "ended_at",
]


def _run_dict(run: object) -> dict[str, object]:
    return {c: getattr(run, c) for c in _RUN_COLUMNS}


@dags.command("list-runs")
@click.argument("dag_id")
@click.option("--state", default=None, help="Only runs in this state.")
@click.option("--limit", default=100, show_default=True)
@output_option
@pass_ctx
def list_runs(ctx: CliContext, dag_id: str, state: str | None, limit: int, output: str) -> None:
    """List the runs of DAG_ID, newest first."""
    ctx.repo.dags.get(dag_id)
    emit(
        [_run_dict(r) for r in ctx.repo.runs.find(dag_id, state=state, limit=limit)],
        _RUN_COLUMNS,
        output,
    )


@dags.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Parse and show, store nothing.")
@output_option
@pass_ctx
def push(ctx: CliContext, path: Path, dry_run: bool, output: str) -> None:
    """Store the DAGs of PATH (a DAG file, or a folder of them, with the helper modules they
    import from it) in the metastore as their current versions, for clusters whose masters
    hold no DAG files (say, from CI). A version a DAG had before becomes current again: a
    rollback. Exits 1 if a file fails to import (the others are pushed)."""
    from haflow.assembly.scheduler import parse_folder

    path = path.resolve()
    folder, only = (path, None) if path.is_dir() else (path.parent, [str(path)])
    parsed = parse_folder(ctx.settings, folder, only)
    for e in parsed.import_errors:
        where = f":{e.line}" if e.line else ""
        click.echo(f"{e.file}{where}: {e.message}", err=True)
    if not parsed.dags and not parsed.import_errors:
        raise click.ClickException(f"no DAG file in {path}")
    records = [d.record for d in parsed.dags.values()]
    done = {} if dry_run else ctx.repo.dags.push(records, parsed.code(), utcnow())
    rows = [
        {
            "dag_id": r.dag_id,
            "version": r.code_hash[:12],
            "tasks": len(r.structure.get("tasks", {})),
            "file": r.fileloc,
            "pushed": done.get(r.dag_id, "not stored (dry run)"),
        }
        for r in records
    ]
    emit(rows, ["dag_id", "version", "tasks", "file", "pushed"], output)
    if parsed.import_errors:
        sys.exit(1)


@dags.command()
@click.argument("dag_id")
@output_option
@pass_ctx
def versions(ctx: CliContext, dag_id: str, output: str) -> None:
    """List the code versions DAG_ID has had, newest first, with the runs of each."""
    rows = [
        {
            "version": v.code_hash[:12],
            "current": v.current,
            "created_at": v.created_at,
            "runs": v.runs,
            "kb": round(v.size / 1024, 1),
            "file": v.entry,
            "code_hash": v.code_hash,
        }
        for v in ctx.repo.dags.versions(dag_id)
    ]
    emit(rows, ["version", "current", "created_at", "runs", "kb", "file"], output)


@dags.command()
@click.argument("dag_id")
@click.option("--version", "-v", default=None, help="Hash prefix (default: its version now).")
@click.option("--run-id", default=None, help="The version this run runs.")
@click.option("--file", "name", default=None, help="A helper module's path in the version.")
@pass_ctx
def code(
    ctx: CliContext, dag_id: str, version: str | None, run_id: str | None, name: str | None
) -> None:
    """Print the code of a version of DAG_ID: its DAG file, or one of its helper modules."""
    from haflow.dag import versions as code_versions

    if run_id is not None:
        version = ctx.repo.runs.get(dag_id, run_id).code_hash
        if version is None:
            raise click.ClickException(f"run {run_id!r} was made before code versions were kept")
    v, files = code_versions.version_code(ctx.repo, dag_id, version)
    try:
        click.echo(files.source(name), nl=False)
    except KeyError:
        names = ", ".join(n for n, _ in files.files)
        why = f"version {v.code_hash[:12]} has no file {name!r}: it holds {names}"
        raise click.UsageError(why) from None


@dags.command()
@click.argument("dag_id")
@click.argument("old")
@click.argument("new", required=False)
@pass_ctx
def diff(ctx: CliContext, dag_id: str, old: str, new: str | None) -> None:
    """Show what changed in DAG_ID's code from version OLD to NEW (default: its version now),
    helper modules included; versions are named by hash prefixes."""
    from haflow.dag import versions as code_versions

    _, _, changes = code_versions.version_diff(ctx.repo, dag_id, old, new)
    click.echo(changes or "(no change)\n", nl=False)


@dags.command("list-import-errors")
@output_option
@pass_ctx
def list_import_errors(ctx: CliContext, output: str) -> None:
    """List DAG files that failed to load, with the line and the error."""
    rows = [
        {"file": e.fileloc, "line": e.line, "error": e.message, "seen_at": e.ts}
        for e in ctx.repo.dags.import_errors()
    ]
    emit(rows, ["file", "line", "error", "seen_at"], output)


@dags.command("test")
@click.argument("dag_id")
@click.option("--conf", "-c", default=None, help="JSON object handed to the tasks.")
@pass_ctx
def test(ctx: CliContext, dag_id: str, conf: str | None) -> None:
    """Run every task of DAG_ID here, in order, without recording anything."""
    from haflow.dag.loader import DagCache
    from haflow.worker.dryrun import parse_conf, test_dag

    dag = DagCache(ctx.settings.core.dags_folder).get(dag_id)
    w = ctx.settings.worker
    states = test_dag(
        dag, parse_conf(conf), click.echo, w.task_env, w.max_result_bytes, ctx.secrets()
    )
    emit(
        [{"task_id": t, "state": s.value} for t, s in states.items()], ["task_id", "state"], "table"
    )
    if any(s.value in ("failed", "upstream_failed") for s in states.values()):
        sys.exit(1)


dags.add_command(backfill)
