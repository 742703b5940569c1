"""Entry point of the `haflow` command: a click group whose errors print as one clear line."""

from __future__ import annotations

import sys

import click

from haflow import __version__
from haflow.cli.backfill import backfill
from haflow.cli.chaos import chaos, cluster
from haflow.cli.config import config
from haflow.cli.connections import connections
from haflow.cli.context import CliContext
from haflow.cli.dags import dags
from haflow.cli.db import db
from haflow.cli.doctor import doctor
from haflow.cli.fernet import rotate_fernet_key
from haflow.cli.jobs import jobs
from haflow.cli.pools import pools
from haflow.cli.scheduler import scheduler
from haflow.cli.standalone import standalone
from haflow.cli.tasks import tasks
from haflow.cli.users import users
from haflow.cli.variables import variables
from haflow.cli.webserver import webserver
from haflow.cli.workers import worker, workers
from haflow.core.params import InvalidParam
from haflow.errors import HaflowError


@click.group()
@click.option(
    "--home",
    envvar="HAFLOW_HOME",
    default=None,
    help="haflow home folder (default $HAFLOW_HOME, else ~/haflow).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """haflow: a workflow orchestrator built for high availability."""
    ctx.obj = CliContext(home=home)


@cli.command()
def version() -> None:
    """Print haflow's version."""
    click.echo(__version__)


dags.add_command(backfill)
for group in (
    db,
    dags,
    tasks,
    config,
    scheduler,
    standalone,
    jobs,
    worker,
    workers,
    doctor,
    webserver,
    users,
    pools,
    variables,
    connections,
    rotate_fernet_key,
    cluster,
    chaos,
):
    cli.add_command(group)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InvalidParam as exc:  # a usage error, as click's own: exit 2
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except HaflowError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
