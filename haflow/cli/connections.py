"""`haflow connections`: how tasks reach other systems, with Airflow's option names.

A password (and the extra's sensitive fields) is shown as *** unless `get --reveal` asks for
it; `list` never shows one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.core.secrets import MASK, Connection
from haflow.errors import NotFound

COLUMNS = ["conn_id", "conn_type", "host", "port", "schema", "login", "description"]
_MASK_IN_URI = quote(MASK, safe="")


@click.group()
def connections() -> None:
    """Connections: how tasks reach other systems (`Connection.get(conn_id)`); the password
    and the extra are encrypted with `[core] fernet_key` in the metastore."""


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """The field options given (--conn-host, ...) by Airflow's field names (host, ...)."""
    return {
        k if k == "conn_type" else k.removeprefix("conn_"): v
        for k, v in options.items()
        if v is not None
    }


def _connection(conn_id: str, uri: str | None, options: dict[str, Any]) -> Connection:
    fields = _fields(options)
    if uri is None:
        if not fields.get("conn_type"):
            raise click.UsageError("give --conn-uri, or --conn-type and the other fields")
        return Connection.from_fields(conn_id, fields)
    clash = sorted(
        f"--{k.replace('_', '-')}"
        for k, v in options.items()
        if v is not None and k != "conn_extra"
    )
    if clash:
        raise click.UsageError(f"give --conn-uri or {', '.join(clash)}, not both")
    conn = Connection.from_uri(conn_id, uri)
    if "extra" not in fields:
        return conn
    extra = Connection.from_fields(conn_id, {"conn_type": conn.conn_type, **fields}).extra
    return replace(conn, extra=extra)


@connections.command()
@click.argument("conn_id")
@click.option("--conn-uri", default=None, help="The whole connection: type://login:pw@host/...")
@click.option("--conn-type", default=None, help="The type (postgres, http, ...).")
@click.option("--conn-host", default=None, help="The host.")
@click.option("--conn-login", default=None, help="The login.")
@click.option("--conn-password", default=None, help="The password.")
@click.option("--conn-schema", default=None, help="The schema (database).")
@click.option("--conn-port", type=click.IntRange(1, 65535), default=None, help="The port.")
@click.option("--conn-extra", default=None, help="The extra, a JSON object (with a URI too).")
@click.option("--conn-description", default="", help="What the connection is for.")
@pass_ctx
def add(
    ctx: CliContext, /, conn_id: str, conn_uri: str | None, conn_description: str, **options: Any
) -> None:
    """Add connection CONN_ID from --conn-uri, or from --conn-type and the other fields;
    refused if CONN_ID exists (delete it first)."""
    conn = replace(_connection(conn_id, conn_uri, options), description=conn_description)
    ctx.repo.connections.add(conn, utcnow())
    click.echo(f"added connection {conn_id}: {masked_uri(conn)}")


def masked_uri(conn: Connection) -> str:
    """The URI with the password and the extra's sensitive fields as ***."""
    return conn.masked().get_uri().replace(_MASK_IN_URI, MASK)


def shown(conn: Connection, reveal: bool) -> dict[str, Any]:
    """The fields of `conn` to print, its secrets masked unless `reveal`, and its URI."""
    uri = conn.get_uri() if reveal else masked_uri(conn)
    return {**(conn if reveal else conn.masked()).to_json(), "uri": uri}


@connections.command()
@click.argument("conn_id")
@click.option("--reveal", is_flag=True, help="Show the password and the extra's secrets.")
@output_option
@pass_ctx
def get(ctx: CliContext, conn_id: str, reveal: bool, output: str) -> None:
    """Print connection CONN_ID, its password as *** unless --reveal."""
    try:
        conn = ctx.repo.connections.get(conn_id)
    except NotFound as exc:
        raise NotFound(f"{exc}: `haflow connections list` shows the ids there are") from None
    fields = shown(conn, reveal)
    if output == "json":
        click.echo(json.dumps(fields, indent=2, ensure_ascii=False))
        return
    rows = [{"field": name, "value": value} for name, value in fields.items()]
    emit(rows, ["field", "value"], output)


@connections.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List the connections (never their passwords or extras)."""
    emit([c.to_json() for c in ctx.repo.connections.list()], COLUMNS, output)


@connections.command()
@click.argument("conn_id")
@pass_ctx
def delete(ctx: CliContext, conn_id: str) -> None:
    """Delete connection CONN_ID."""
    ctx.repo.connections.delete(conn_id, utcnow())
    click.echo(f"deleted connection {conn_id}")
