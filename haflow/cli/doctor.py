"""`haflow doctor`: one line per check; the exit code names the first problem found."""

from __future__ import annotations

import sys

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.doctor.checks import Check, run_checks


def _line(c: Check) -> None:
    mark = "ok  " if c.ok else "FAIL"
    click.echo(f"{mark} {c.name:<10} {c.finding.detail}")


@click.command()
@click.option("--allow-root", is_flag=True, help="Do not count running as root as a problem.")
@pass_ctx
def doctor(ctx: CliContext, allow_root: bool) -> None:
    """Check metastore, broker, ZooKeeper, clock, DAG files and secrets from this node.

    Exit codes: 0 all good; 10 name not resolved, 11 port refused, 12 timeout, 13 connection
    reset, 14 credentials refused, 15 the URL points at this node itself, 20 schema not
    migrated, 21 clock skew, 22 DAG files differ, 23 no ZooKeeper session, 24 webservers with
    different secret keys, 30 root or empty secret, 31 bad configuration.
    """
    checks = run_checks(ctx.settings, allow_root=allow_root, report=_line)
    failed = [c for c in checks if not c.ok]
    if failed:
        click.echo(f"{len(failed)} problem(s); the first one sets the exit code", err=True)
        sys.exit(failed[0].finding.problem.value)
    click.echo("all checks passed")
