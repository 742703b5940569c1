"""`haflow pools`: named slots that cap how many task instances using them are in flight."""

from __future__ import annotations

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow

COLUMNS = ["name", "slots", "running_slots", "queued_slots", "open_slots", "description"]


@click.group()
def pools() -> None:
    """Pools: a task takes `pool="name"` (and `pool_slots`); the pool's slots cap how many of
    its task instances are queued or running at once, across every DAG and scheduler."""


@pools.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List the pools with the slots in use now."""
    from haflow.web.serialize import pool_json  # imports Flask: only this command needs it

    emit([pool_json(p) for p in ctx.repo.pools.list()], COLUMNS, output)


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=int)
@click.option("--description", "-d", default=None, help="What the pool is for.")
@pass_ctx
def set_(ctx: CliContext, name: str, slots: int, description: str | None) -> None:
    """Create pool NAME with SLOTS slots, or change its slots. Lowering them below what is in
    use stops nothing: no more is queued in the pool until it has room."""
    p = ctx.repo.pools.set(name, slots, utcnow(), description)
    click.echo(f"pool {p.name}: {p.slots} slots ({p.occupied} in use)")


@pools.command()
@click.argument("name")
@pass_ctx
def delete(ctx: CliContext, name: str) -> None:
    """Delete pool NAME (refused while unfinished runs have tasks in it)."""
    ctx.repo.pools.delete(name, utcnow())
    click.echo(f"deleted pool {name}")
