"""`haflow scheduler` (the scheduler daemon) and `haflow scheduler status` (who leads, who
stands by; read from the metastore only, so it works from any node; exit 1 with no live
leader, so it serves as a probe)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from haflow.cli.context import CliContext
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.logs import setup_logging

if TYPE_CHECKING:
    from haflow.metastore.repository import Repository

# The daemon's assembly (kazoo, Celery, the scheduler) is imported when the daemon starts:
# `scheduler status` and `jobs check` (through cluster_repo) read the metastore only.


@click.group(invoke_without_command=True)
@click.option("--cluster", default=None, help="Cluster name (default [scheduler] cluster).")
@click.pass_context
def scheduler(click_ctx: click.Context, cluster: str | None) -> None:
    """Run a scheduler: a candidate in the election; the leader schedules."""
    if click_ctx.invoked_subcommand is not None:
        return
    from haflow.assembly.scheduler import build_scheduler, run_until_signalled
    from haflow.metastore.schema_version import require_current

    ctx: CliContext = click_ctx.obj
    setup_logging(ctx.settings.logging.level)
    require_current(ctx.engine)
    run_until_signalled(build_scheduler(ctx.settings, cluster=cluster))


@scheduler.command("status")
@click.option(
    "--max-age",
    default=10.0,
    show_default=True,
    help="Seconds after which a heartbeat counts as dead.",
)
@click.option("--all", "show_stopped", is_flag=True, help="Also list stopped schedulers.")
@output_option
@click.pass_context
def status(click_ctx: click.Context, max_age: float, show_stopped: bool, output: str) -> None:
    """Leader, standbys, epoch, elector mode, heartbeats; exit 1 when no live leader."""
    cluster = click_ctx.parent.params.get("cluster") if click_ctx.parent else None
    scheduler_status(click_ctx.obj, cluster, max_age, output, show_stopped)


def cluster_repo(ctx: CliContext, cluster: str | None) -> Repository:
    """The CLI's repository, for `cluster` when one is named."""
    from haflow.metastore.repository import Repository

    repo = ctx.repo
    if cluster:
        repo = Repository(repo.engine, cluster=cluster, actor="cli")
    return repo


def scheduler_status(
    ctx: CliContext, cluster: str | None, max_age: float, output: str, show_stopped: bool
) -> None:
    from haflow import status as cluster_status

    lead = cluster_status.leadership(cluster_repo(ctx, cluster), utcnow(), max_age)
    rows = [asdict(v) for v in lead.schedulers if show_stopped or v.role != "stopped"]
    if output == "json":
        body = {**lead.as_dict(), "schedulers": rows}
        click.echo(json.dumps(body, indent=2, default=str))
    else:
        who = lead.leader.scheduler if lead.leader else "NONE"
        epoch = lead.epoch if lead.epoch is not None else "-"
        click.echo(f"cluster {lead.cluster}: leader {who}, epoch {epoch}")
        emit(rows, list(COLUMNS), "table")
    sys.exit(0 if lead.leader else 1)


COLUMNS = (
    "scheduler",
    "role",
    "epoch",
    "elector_mode",
    "heartbeat_age_s",
    "hostname",
    "pid",
    "started_at",
)
