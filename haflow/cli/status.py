"""`haflow scheduler status` and `haflow jobs check`: who leads, who stands by, who is alive.

Both read the metastore only (the leader row and each scheduler's heartbeat row), so they work
from any node; their exit code (0 healthy, 1 not) serves as a liveness probe.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from haflow import status
from haflow.cli.context import CliContext
from haflow.cli.output import emit
from haflow.core.clock import utcnow
from haflow.metastore.repository import Repository


def _rows(repo: Repository, now: datetime, max_age_s: float) -> list[dict[str, Any]]:
    return [asdict(v) for v in status.leadership(repo, now, max_age_s).schedulers]


def _repo(ctx: CliContext, cluster: str | None) -> Repository:
    repo = ctx.repo
    if cluster:
        repo = Repository(repo.engine, cluster=cluster, actor="cli")
    return repo


def scheduler_status(
    ctx: CliContext, cluster: str | None, max_age: float, output: str, show_stopped: bool
) -> None:
    lead = status.leadership(_repo(ctx, cluster), utcnow(), max_age)
    rows = [asdict(v) for v in lead.schedulers if show_stopped or v.role != "stopped"]
    if output == "json":
        import json

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


@click.group()
def jobs() -> None:
    """Liveness checks for probes and monitoring."""


@jobs.command("check")
@click.option("--cluster", default=None, help="Cluster name (default [scheduler] cluster).")
@click.option(
    "--hostname",
    default=None,
    help="Check for a live scheduler on this host "
    "(leader or standby) instead of a live leader anywhere.",
)
@click.option(
    "--max-age",
    default=10.0,
    show_default=True,
    help="Seconds after which a heartbeat counts as dead.",
)
@click.pass_obj
def check(ctx: CliContext, cluster: str | None, hostname: str | None, max_age: float) -> None:
    """Exit 0 when a live leader exists (or a live scheduler on --hostname), else 1."""
    rows = _rows(_repo(ctx, cluster), utcnow(), max_age)
    if hostname:
        ok = [r for r in rows if r["hostname"] == hostname and r["role"] in ("leader", "standby")]
        what = f"scheduler on {hostname}"
    else:
        ok = [r for r in rows if r["role"] == "leader"]
        what = "leader"
    if ok:
        click.echo(
            f"ok: live {what} {ok[0]['scheduler']} (heartbeat {ok[0]['heartbeat_age_s']} s ago)"
        )
        return
    click.echo(f"no live {what} (heartbeat within {max_age:g} s)", err=True)
    sys.exit(1)
