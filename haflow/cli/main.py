"""Entry point of the `haflow` command: a click group whose errors print as one clear line."""

from __future__ import annotations

import sys

import click

from haflow import __version__
from haflow.cli.context import CliContext
from haflow.cli.lazy import Lazy, LazyGroup
from haflow.core.params import InvalidParam
from haflow.errors import HaflowError

# Every command but `version`, imported when it is run (or its own --help asked for): most pull
# in SQLAlchemy, Celery, kazoo or Flask. The short help is the one `haflow --help` lists.
COMMANDS = {
    "chaos": Lazy(
        "haflow.cli.chaos:chaos", "Inject faults into a cluster's nodes; run chaos scenarios."
    ),
    "cluster": Lazy(
        "haflow.cli.chaos:cluster",
        "A multi-node haflow cluster in Docker containers, for chaos testing.",
    ),
    "config": Lazy("haflow.cli.config:config", "Show the effective configuration."),
    "connections": Lazy(
        "haflow.cli.connections:connections",
        "Connections: how tasks reach other systems (`Connection.get(conn_id)`); the password "
        "and the extra are encrypted with `[core] fernet_key` in the metastore.",
    ),
    "dags": Lazy(
        "haflow.cli.dags:dags",
        "DAGs: list, trigger, pause, runs, code versions, import errors, test.",
    ),
    "db": Lazy(
        "haflow.cli.db:db", "Create, upgrade and check the metastore schema; prune old rows."
    ),
    "doctor": Lazy(
        "haflow.cli.doctor:doctor",
        "Check metastore, broker, ZooKeeper, clock, DAG files and secrets from this node.",
    ),
    "jobs": Lazy("haflow.cli.jobs:jobs", "Liveness checks for probes and monitoring."),
    "pools": Lazy(
        "haflow.cli.pools:pools",
        'Pools: a task takes `pool="name"` (and `pool_slots`); the pool\'s slots cap how many '
        "of its task instances are queued or running at once, across every DAG and scheduler.",
    ),
    "rotate-fernet-key": Lazy(
        "haflow.cli.fernet:rotate_fernet_key",
        "Re-encrypt every variable and connection under the first key of [core] fernet_key.",
    ),
    "scheduler": Lazy(
        "haflow.cli.scheduler:scheduler",
        "Run a scheduler: a candidate in the election; the leader schedules.",
    ),
    "standalone": Lazy(
        "haflow.cli.standalone:standalone",
        "Everything on this machine: SQLite metastore, scheduler, local executor and web UI.",
    ),
    "tasks": Lazy(
        "haflow.cli.tasks:tasks", "Tasks and task instances: list, state, clear, logs, test."
    ),
    "users": Lazy("haflow.cli.users:users", "Users of the web UI and the REST API."),
    "variables": Lazy(
        "haflow.cli.variables:variables",
        "Variables: named values tasks read with `Variable.get(key)`, encrypted with "
        "`[core] fernet_key` in the metastore.",
    ),
    "webserver": Lazy(
        "haflow.cli.webserver:webserver",
        "Run the web server (UI, REST API, /health, /ready) under gunicorn; SIGHUP reloads.",
    ),
    "worker": Lazy(
        "haflow.cli.workers:worker",
        "Run a Celery worker: claim attempts from the broker, run them, report.",
    ),
    "workers": Lazy("haflow.cli.workers:workers", "Workers known to the metastore."),
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS)
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
