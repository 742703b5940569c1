"""`haflow webserver`: the web daemon (gunicorn; SIGHUP reloads)."""

from __future__ import annotations

import click

from haflow.cli.context import CliContext, pass_ctx


@click.command()
@click.option(
    "-w", "--workers", type=int, default=None, help="Worker processes ([webserver] workers)."
)
@click.option("-p", "--port", type=int, default=None, help="TCP port ([webserver] port).")
@click.option("-H", "--host", default=None, help="Listen address ([webserver] host).")
@pass_ctx
def webserver(ctx: CliContext, workers: int | None, port: int | None, host: str | None) -> None:
    """Run the web server (UI, REST API, /health, /ready) under gunicorn; SIGHUP reloads."""
    from haflow.assembly.web import run_webserver

    overrides = {"webserver__workers": workers, "webserver__port": port, "webserver__host": host}
    settings = ctx.settings.with_overrides(**{k: v for k, v in overrides.items() if v is not None})
    ctx.repo  # noqa: B018 - refuses to start on an unmigrated metastore, with the fix
    run_webserver(settings)
