"""`haflow db migrate|check|clean`."""

from __future__ import annotations

import math
import sys
import time
from datetime import timedelta

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.core.clock import utcnow
from haflow.metastore.migrate import migrate, status
from haflow.metastore.repository.retention import TABLES


@click.group()
def db() -> None:
    """Create, upgrade and check the metastore schema; prune old rows."""


@db.command("migrate")
@pass_ctx
def db_migrate(ctx: CliContext) -> None:
    """Upgrade the metastore schema to this haflow's revision."""
    st = migrate(ctx.engine)
    click.echo(f"metastore at revision {st.current} (head {st.head})")


@db.command("check")
@pass_ctx
def db_check(ctx: CliContext) -> None:
    """Exit 0 when the metastore is reachable and migrated, 1 otherwise."""
    st = status(ctx.engine)
    if st.up_to_date:
        click.echo(f"ok: metastore reachable, schema at revision {st.current}")
        return
    click.echo(
        f"schema at revision {st.current or 'none'}, expected {st.head}: run `haflow db migrate`",
        err=True,
    )
    sys.exit(1)


_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '90m', '3600s' or a bare number of days."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:]) if raw else None
    number = raw[:-1] if unit else raw
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not raw or not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{text!r}: give an age such as 30d, 12h, 90m or 3600s")
    return timedelta(seconds=value * (unit or _UNITS["d"]))


@db.command("clean")
@click.option("--older-than", "older_than", required=True, help="Age: 30d, 12h, 90m, 3600s.")
@click.option(
    "--tables",
    default=",".join(TABLES),
    show_default=True,
    help="Which to prune (comma-separated).",
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@pass_ctx
def db_clean(ctx: CliContext, older_than: str, tables: str, batch_size: int, dry_run: bool) -> None:
    """Delete what is older than --older-than: runs that ended (with their task instances,
    attempts and logs), events, settled notifications, login failures, expired sessions. In
    batches of short transactions, safe while schedulers and workers run; prints progress."""
    cutoff = utcnow() - parse_age(older_than)
    chosen = [t.strip() for t in tables.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TABLES]
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; choose from {', '.join(TABLES)}")
    retention = ctx.repo.retention
    if dry_run:
        for t in chosen:
            click.echo(f"{t}: {retention.count(t, cutoff)} older than {cutoff:%Y-%m-%d %H:%M} UTC")
        return
    last = [0.0]

    def progress(table: str, done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 1.0 or done >= total:
            last[0] = time.monotonic()
            click.echo(f"{table}: {done}/{total} deleted", err=True)

    deleted = retention.clean(cutoff, chosen, batch=batch_size, progress=progress)
    click.echo(", ".join(f"{t}: {n} deleted" for t, n in deleted.items()))
