"""`haflow jobs check`: a liveness probe (exit 0 with a live leader, or a live scheduler on
--hostname; else 1), read from the metastore only, so it works from any node."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from haflow.cli.context import CliContext
from haflow.cli.scheduler import cluster_repo
from haflow.core.clock import utcnow

if TYPE_CHECKING:
    from haflow.metastore.repository import Repository


def _rows(repo: Repository, now: datetime, max_age_s: float) -> list[dict[str, Any]]:
    from haflow import status as cluster_status

    return [asdict(v) for v in cluster_status.leadership(repo, now, max_age_s).schedulers]


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
    rows = _rows(cluster_repo(ctx, cluster), utcnow(), max_age)
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
