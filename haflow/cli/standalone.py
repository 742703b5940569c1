"""`haflow standalone`: everything on one machine, on SQLite."""

from __future__ import annotations

import click

from haflow.cli.context import CliContext, pass_ctx


@click.command()
@click.option(
    "--parallelism",
    type=int,
    default=None,
    help="Concurrent attempts (default [core] parallelism).",
)
@click.option("--port", type=int, default=None, help="Web UI port (default [webserver] port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web UI listen address.")
@pass_ctx
def standalone(ctx: CliContext, parallelism: int | None, port: int | None, host: str) -> None:
    """Everything on this machine: SQLite metastore, scheduler, local executor and web UI."""
    from haflow.assembly.standalone import run_standalone

    run_standalone(ctx.home, parallelism=parallelism, port=port, host=host)
