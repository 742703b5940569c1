"""`haflow db migrate|check`."""

from __future__ import annotations

import sys

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.metastore.migrate import migrate, status


@click.group()
def db() -> None:
    """Create, upgrade and check the metastore schema."""


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
