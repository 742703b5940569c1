"""`haflow variables`: named values for tasks, kept encrypted in the metastore.

A value is text; `import` and `export` read and write Airflow's file form, a JSON object of
key -> value (a value that is not a string is kept as its JSON text; a kept text that is a JSON
object or array is exported as that). Values of sensitive keys are masked in listings.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from haflow.cli.context import CliContext, pass_ctx
from haflow.cli.output import emit, output_option
from haflow.core.clock import utcnow
from haflow.core.secrets import MASK
from haflow.errors import InvalidRequest, NotFound
from haflow.metastore.records import VariableRow

STDIO = "-"
COLUMNS = ["key", "description", "value"]


@click.group()
def variables() -> None:
    """Variables: named values tasks read with `Variable.get(key)`, encrypted with
    `[core] fernet_key` in the metastore."""


def _get(ctx: CliContext, key: str) -> VariableRow:
    try:
        return ctx.repo.variables.get(key)
    except NotFound as exc:
        raise NotFound(f"{exc}: `haflow variables list` shows the keys there are") from None


@variables.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Parse the value as JSON; pretty print.")
@pass_ctx
def get(ctx: CliContext, key: str, as_json: bool) -> None:
    """Print the value of variable KEY."""
    value = _get(ctx, key).value
    if not as_json:
        click.echo(value)
        return
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidRequest(
            f"variable {key!r} is not JSON ({exc}): print it without --json"
        ) from None
    click.echo(json.dumps(parsed, indent=2, ensure_ascii=False))


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--description", "-d", default=None, help="What the variable is for.")
@click.option("--json", "as_json", is_flag=True, help="Refuse a VALUE that is not JSON.")
@pass_ctx
def set_(ctx: CliContext, key: str, value: str, description: str | None, as_json: bool) -> None:
    """Create variable KEY with VALUE, or change its value (and description, when given)."""
    if as_json:
        try:
            json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="VALUE") from None
    ctx.repo.variables.set(key, value, utcnow(), description)
    click.echo(f"set variable {key}")


def _listed(v: VariableRow) -> dict[str, Any]:
    return {"key": v.key, "description": v.description, "value": MASK if v.sensitive else v.value}


@variables.command("list")
@output_option
@pass_ctx
def list_(ctx: CliContext, output: str) -> None:
    """List the variables; the values of sensitive keys (password, token, ...) as ***."""
    emit([_listed(v) for v in ctx.repo.variables.list()], COLUMNS, output)


@variables.command()
@click.argument("key")
@pass_ctx
def delete(ctx: CliContext, key: str) -> None:
    """Delete variable KEY."""
    ctx.repo.variables.delete(key, utcnow())
    click.echo(f"deleted variable {key}")


def _read(file: str) -> str:
    if file == STDIO:
        return sys.stdin.read()
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidRequest(f"cannot read {file}: {reason}") from None


def _where(file: str) -> str:
    return "standard input" if file == STDIO else file


def parse_import(text: str, file: str) -> dict[str, str]:
    """The variables of an import file: key -> text, a non-string value as its JSON text."""
    where = _where(file)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"{where} is not JSON ({exc}): give a JSON object") from None
    if not isinstance(data, dict):
        kind = "array" if isinstance(data, list) else "string" if isinstance(data, str) else "value"
        raise InvalidRequest(f"{where} holds a JSON {kind}: give an object of key -> value")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


@variables.command("import")
@click.argument("file")
@pass_ctx
def import_(ctx: CliContext, file: str) -> None:
    """Set every variable of FILE (`-`: standard input), a JSON object of key -> value, in one
    transaction: all of them or none."""
    values = parse_import(_read(file), file)
    try:
        ctx.repo.variables.set_many(values, utcnow())
    except InvalidRequest as exc:
        raise InvalidRequest(f"{_where(file)}: {exc}; nothing was imported") from None
    click.echo(f"imported {len(values)} variable(s)")


def export_value(value: str) -> Any:
    """A kept text that is a JSON object or array is exported as that, anything else as text."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict | list) else value


def _write_private(file: str, text: str) -> None:
    """Write `text` to `file` readable by its owner alone: it holds secrets."""
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise InvalidRequest(f"cannot write {file}: {exc.strerror or exc}") from None
    os.fchmod(fd, 0o600)  # a file that was there keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@variables.command()
@click.argument("file")
@pass_ctx
def export(ctx: CliContext, file: str) -> None:
    """Write every variable to FILE (`-`: standard output) as a JSON object of key -> value,
    in plaintext: FILE is made readable by its owner alone."""
    rows = ctx.repo.variables.list()
    text = json.dumps({v.key: export_value(v.value) for v in rows}, indent=2, ensure_ascii=False)
    if file == STDIO:
        click.echo(text)
        click.echo(f"exported {len(rows)} variable(s)", err=True)
        return
    _write_private(file, text + "\n")
    click.echo(f"exported {len(rows)} variable(s) to {file}")
