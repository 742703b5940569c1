"""`haflow scheduler` and `haflow standalone`: the long-running daemons."""

from __future__ import annotations

import click

from haflow.assembly.scheduler import build_scheduler, run_until_signalled
from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import output_option
from haflow.cli.status import scheduler_status
from haflow.logs import setup_logging
from haflow.metastore.migrate import require_current


@click.group(invoke_without_command=True)
@click.option("--cluster", default=None, help="Cluster name (default [scheduler] cluster).")
@click.pass_context
def scheduler(click_ctx: click.Context, cluster: str | None) -> None:
    """Run a scheduler: a candidate in the election; the leader schedules."""
    if click_ctx.invoked_subcommand is not None:
        return
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
