"""`haflow users`: the people who may log in to the web UI and REST API, and their tokens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.errors import InvalidRequest, NotFound
from haflow.metastore.repository.users import ROLES

# haflow.web.credentials is imported by the commands that make a password hash or a token: the
# web package imports Flask.


@click.group()
def users() -> None:
    """Users of the web UI and the REST API."""


def _password(password: str | None, password_file: str | None) -> str:
    if password is not None and password_file is not None:
        raise click.UsageError("give --password or --password-file, not both")
    if password_file is not None:
        return Path(password_file).read_text().strip()
    if password is not None:
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--password", default=None, help="The password (else asked for, or a file).")
@click.option("--password-file", default=None, help="A file holding the password.")
@click.option("--exists-ok", is_flag=True, help="Do nothing if the user already exists.")
@pass_ctx
def create(
    ctx: CliContext,
    username: str,
    role: str,
    password: str | None,
    password_file: str | None,
    exists_ok: bool,
) -> None:
    """Create a user with a role: Admin (everything), Op (pause, trigger, clear), Viewer."""
    from haflow.web.credentials import hash_password

    if exists_ok:
        try:
            ctx.repo.users.get(username)
            click.echo(f"user {username} exists; left as it is")
            return
        except NotFound:
            pass
    pw_hash = hash_password(_password(password, password_file))
    ctx.repo.users.create(username, pw_hash, role, utcnow())
    click.echo(f"created user {username} ({role})")


@users.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List users and their roles."""
    rows = [
        {"username": u.username, "role": u.role, "created_at": u.created_at}
        for u in ctx.repo.users.all()
    ]
    emit(rows, ["username", "role", "created_at"], output)


@users.command("delete")
@click.argument("username")
@pass_ctx
def delete(ctx: CliContext, username: str) -> None:
    """Delete a user and their API tokens."""
    ctx.repo.users.delete(username)
    click.echo(f"deleted user {username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password", default=None)
@click.option("--password-file", default=None)
@pass_ctx
def set_password(
    ctx: CliContext, username: str, password: str | None, password_file: str | None
) -> None:
    """Change a user's password; their open sessions end and their API tokens are revoked."""
    from haflow.web.credentials import hash_password

    pw_hash = hash_password(_password(password, password_file))
    ctx.repo.users.set(username, utcnow(), password_hash=pw_hash)
    click.echo(f"password of {username} changed")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@pass_ctx
def set_role(ctx: CliContext, username: str, role: str) -> None:
    """Change a user's role; their open sessions end (they log in again under the new role)."""
    ctx.repo.users.set(username, utcnow(), role=role)
    click.echo(f"{username} is now {role}")


def _expires_option(f: Any) -> Any:
    return click.option(
        "--expires-in-days",
        type=click.IntRange(min=1, max=3650),
        default=None,
        help="The token stops working after this many days (default: until revoked).",
    )(f)


def _make_token(ctx: CliContext, username: str, name: str, days: int | None) -> None:
    from haflow.web.credentials import new_token, token_digest

    value = new_token()
    now = utcnow()
    expires = now + timedelta(days=days) if days else None
    try:
        ctx.repo.users.add_token(username, token_digest(value), name, now, expires)
    except NotFound as exc:
        raise InvalidRequest(str(exc)) from exc
    click.echo(value)


@users.command("token")
@click.argument("username")
@click.option("--name", default="", help="A label for the token.")
@_expires_option
@pass_ctx
def token(ctx: CliContext, username: str, name: str, expires_in_days: int | None) -> None:
    """Make an API token for a user and print it (shown only this once); same as
    `haflow users tokens create`."""
    _make_token(ctx, username, name, expires_in_days)


@users.group("tokens")
def tokens() -> None:
    """API tokens: make, list and revoke them. A password change revokes a user's tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="", help="A label for the token.")
@_expires_option
@pass_ctx
def tokens_create(ctx: CliContext, username: str, name: str, expires_in_days: int | None) -> None:
    """Make an API token for a user and print it (it is shown only this once)."""
    _make_token(ctx, username, name, expires_in_days)


@tokens.command("list")
@click.option("--user", "username", default=None, help="Only this user's tokens.")
@click.option("--all", "everything", is_flag=True, help="Revoked and expired ones too.")
@output_option
@pass_ctx
def tokens_list(ctx: CliContext, username: str | None, everything: bool, output: str) -> None:
    """List API tokens (never the tokens themselves: only their digests are kept)."""
    now = utcnow()
    rows = [
        {
            "id": t.id,
            "username": t.username,
            "name": t.name,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "state": "active" if t.active(now) else "revoked" if t.revoked_at else "expired",
        }
        for t in ctx.repo.users.tokens(username)
        if everything or t.active(now)
    ]
    emit(rows, ["id", "username", "name", "created_at", "expires_at", "state"], output)


@tokens.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
def tokens_revoke(ctx: CliContext, token_id: int) -> None:
    """Revoke an API token by its id (see `haflow users tokens list`); it stops working at once."""
    ctx.repo.users.revoke_token(token_id, utcnow())
    click.echo(f"API token {token_id} revoked")
