"""`haflow config get-value|list`."""

from __future__ import annotations

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option


@click.group()
def config() -> None:
    """Show the effective configuration."""


@config.command("get-value")
@click.argument("section")
@click.argument("key")
@pass_ctx
def get_value(ctx: CliContext, section: str, key: str) -> None:
    """Print one setting's effective value."""
    click.echo(ctx.settings.get(section, key))


@config.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List every setting (secrets masked)."""
    rows = [
        {"section": section, "key": key, "value": str(value)}
        for section, values in ctx.settings.as_dict(mask_secrets=True).items()
        for key, value in values.items()
    ]
    emit(rows, ["section", "key", "value"], output)
