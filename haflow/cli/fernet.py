"""`haflow rotate-fernet-key`: the middle step of changing `[core] fernet_key`.

The steps: put the new key first and keep the old one after it (`new,old`) on every node and
restart them; run this once (every stored secret re-encrypted under the new key); then set the
new key alone everywhere. Every node can read every secret at each step.
"""

from __future__ import annotations

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.core.clock import utcnow


@click.command("rotate-fernet-key")
@pass_ctx
def rotate_fernet_key(ctx: CliContext) -> None:
    """Re-encrypt every variable and connection under the first key of [core] fernet_key."""
    repo = ctx.repo
    repo.check_secrets()  # names what no key opens before anything is rewritten
    now = utcnow()
    variables = repo.variables.rotate(now)
    connections = repo.connections.rotate(now)
    click.echo(
        f"re-encrypted {variables} variable(s) and {connections} connection(s) under the "
        "first key of [core] fernet_key"
    )
    if repo.variables.crypto.keys > 1:
        click.echo(
            "now remove the old key(s) from [core] fernet_key on every node, keeping the "
            "first alone, and restart them"
        )
