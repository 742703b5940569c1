"""`haflow worker` (the Celery worker daemon) and `haflow workers list`."""

from __future__ import annotations

import socket

import click

from haflow import status
from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.logs import setup_logging


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Attempts run at once (default [worker] concurrency).",
)
@click.option(
    "--queues",
    "-q",
    default=None,
    help="Comma-separated queues to consume (default [celery] default_queue).",
)
@click.option(
    "--hostname",
    "-n",
    default=None,
    help="Worker name, unique in the cluster (default the host's name).",
)
@click.option("--allow-root", is_flag=True, help="Run tasks as root anyway.")
@pass_ctx
def worker(
    ctx: CliContext,
    concurrency: int | None,
    queues: str | None,
    hostname: str | None,
    allow_root: bool,
) -> None:
    """Run a Celery worker: claim attempts from the broker, run them, report."""
    from haflow.assembly.worker import run_worker

    s = ctx.settings
    setup_logging(s.logging.level)
    run_worker(
        s,
        concurrency=concurrency or s.worker.concurrency,
        queues=(queues or s.celery.default_queue).split(","),
        hostname=hostname or socket.getfqdn(),
        allow_root=allow_root,
    )


@click.group()
def workers() -> None:
    """Workers known to the metastore."""


@workers.command("list")
@click.option(
    "--max-age",
    default=None,
    type=float,
    help="Seconds after which a heartbeat counts as dead (default [worker] timeout).",
)
@output_option
@pass_ctx
def list_(ctx: CliContext, max_age: float | None, output: str) -> None:
    """List workers with their state, queues and heartbeat age."""
    limit = max_age if max_age is not None else ctx.settings.worker.timeout
    rows = status.workers(ctx.repo, utcnow(), limit)
    emit(
        rows,
        [
            "worker",
            "kind",
            "state",
            "queues",
            "concurrency",
            "running",
            "heartbeat_age_s",
            "hostname",
            "started_at",
        ],
        output,
    )
