"""`haflow dags backfill`: run a DAG's intervals over a range, with progress."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.core.clock import utcnow
from haflow.errors import InvalidRequest

if TYPE_CHECKING:
    from haflow.metastore.records import BackfillRow
    from haflow.metastore.repository import Repository


@click.command()
@click.argument("dag_id")
@click.option("--start", "-s", required=True, help="First interval start (ISO date or time).")
@click.option("--end", "-e", required=True, help="Last interval start (ISO date or time).")
@click.option(
    "--reset-existing", is_flag=True, help="Run intervals that already ran (and ended) again."
)
@click.option(
    "--max-active-runs", type=int, default=10, show_default=True, help="Its runs at once."
)
@click.option("--dry-run", is_flag=True, help="List the intervals and their runs; do nothing.")
@click.option(
    "--wait", is_flag=True, help="Show progress until it is done; exit 1 if a run failed."
)
@pass_ctx
def backfill(
    ctx: CliContext,
    dag_id: str,
    start: str,
    end: str,
    reset_existing: bool,
    max_active_runs: int,
    dry_run: bool,
    wait: bool,
) -> None:
    """Run DAG_ID's intervals whose start lies from START to END (dates without an offset are
    in the DAG's timezone) and that have ended. The leader creates one run per interval that
    has none (an interval the schedule already ran keeps its run), at most --max-active-runs
    at once."""
    from haflow.dag.schedule import backfill_intervals, local_instant

    dag = ctx.repo.overview.dag_detail(dag_id)
    try:
        first = local_instant(start, dag.timezone, "--start")
        last = local_instant(end, dag.timezone, "--end")
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    intervals = backfill_intervals(
        dag.schedule, dag.timezone, dag.start_date, first, last, dag_id=dag_id, now=utcnow()
    )
    if dry_run:
        have = {r.data_interval_end: r for r in ctx.repo.runs.find(dag_id, limit=10_000)}
        for s, e in intervals:
            run = have.get(e)
            there = f"{run.run_id} ({run.state})" if run else "no run yet"
            click.echo(f"{s.isoformat()} .. {e.isoformat()}  {there}")
        click.echo(f"{len(intervals)} interval(s); nothing was created (--dry-run)", err=True)
        return
    b = ctx.repo.backfills.create(
        dag_id,
        first,
        last,
        len(intervals),
        utcnow(),
        max_active_runs=max_active_runs,
        reset_existing=reset_existing,
    )
    click.echo(f"backfill {b.id} of {dag_id}: {b.intervals} interval(s)")
    if wait:
        done = follow(ctx.repo, b.id)
        sys.exit(0 if done.failed == 0 else 1)


def progress(b: BackfillRow) -> str:
    return (
        f"backfill {b.id}: {b.finished}/{b.intervals} interval(s) ended "
        f"({b.succeeded} succeeded, {b.failed} failed), {b.unfinished} in flight"
    )


def follow(repo: Repository, bid: int, poll_s: float = 1.0) -> BackfillRow:
    """Print the backfill's progress as it changes, until it is done."""
    said = ""
    while True:
        b = repo.backfills.get(bid)
        line = progress(b)
        if line != said:
            click.echo(line, err=True)
            said = line
        if b.state == "done":
            return b
        time.sleep(poll_s)
