"""Variables and connections on the web: what each role sees of them, and the checks of what
is typed in, shared by the REST API and the pages.

Who sees what: an Op or Admin (action `see_secrets`) sees a variable's value, masked (`MASK`)
in lists when its key looks sensitive, and a connection's login and its extra with the
sensitive fields masked. A Viewer sees no variable value and, of a connection, its id, type,
description, host, schema and port only. A connection's password is write-only: no response
or page ever holds it. A sensitive extra field sent back still masked keeps the stored value,
so a form filled from what was shown never overwrites a secret with the mask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from haflow.core.ids import check_text
from haflow.core.secrets import (
    MASK,
    MAX_VALUE_CHARS,
    Connection,
    check_conn_id,
    check_variable_key,
    is_sensitive,
    mask_extra,
)
from haflow.errors import InvalidRequest
from haflow.metastore.records import VariableRow
from haflow.web.api import MAX_JSON_DEPTH, json_depth

# the longest each text field may be: what every metastore's column holds
TEXT_LIMITS = {
    "conn_type": 500,
    "host": 500,
    "schema": 500,
    "login": 10000,
    "password": 10000,
    "description": 10000,
}
CONN_FIELDS = frozenset({*TEXT_LIMITS, "port", "extra"})


class BadField(InvalidRequest):
    """A field of a variable or a connection is malformed; `field` names it (the app answers
    400 with it)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def variable_json(v: VariableRow, reveal: bool) -> dict[str, Any]:
    """A variable in Airflow's shape; its value MASK unless `reveal`."""
    return {"key": v.key, "value": v.value if reveal else MASK, "description": v.description}


def listed(v: VariableRow, sees_secrets: bool) -> dict[str, Any]:
    """A variable as a list shows it: the value only to who sees secrets, and never when its
    key looks sensitive."""
    return variable_json(v, sees_secrets and not v.sensitive)


def connection_json(c: Connection, sees_secrets: bool, indent: int | None = None) -> dict[str, Any]:
    """A connection in Airflow's shape (extra as JSON text, indented by `indent`), never with its
    password; login and extra null for who does not see secrets."""
    return {
        "connection_id": c.conn_id,
        "conn_type": c.conn_type,
        "description": c.description,
        "host": c.host,
        "login": c.login if sees_secrets else None,
        "schema": c.schema,
        "port": c.port,
        "extra": _shown_extra(c, indent) if sees_secrets else None,
    }


def _shown_extra(c: Connection, indent: int | None = None) -> str | None:
    """The extra as JSON text, its sensitive fields masked; None without one."""
    return json.dumps(mask_extra(c.extra), indent=indent) if c.extra else None


def keep_masked(new: Any, old: Any) -> Any:
    """`new` (an extra) with each sensitive field still MASK given the value it has in `old`."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {
            k: old[k]
            if v == MASK and is_sensitive(str(k)) and k in old
            else keep_masked(v, old.get(k))
            for k, v in new.items()
        }
    if isinstance(new, list) and isinstance(old, list):
        return [keep_masked(v, old[i] if i < len(old) else None) for i, v in enumerate(new)]
    return new


def variable_key(key: object) -> str:
    try:
        return check_variable_key(key)
    except InvalidRequest as exc:
        raise BadField(str(exc), "key") from None


def variable_value(value: object) -> str:
    return _text(value, "value", MAX_VALUE_CHARS)


def description(value: object) -> str | None:
    return None if value is None else _text(value, "description", TEXT_LIMITS["description"])


def connection_id(conn_id: object) -> str:
    try:
        return check_conn_id(conn_id)
    except InvalidRequest as exc:
        raise BadField(str(exc), "connection_id") from None


def _text(value: object, name: str, limit: int) -> str:
    try:
        return check_text(value, name, limit)
    except InvalidRequest as exc:
        raise BadField(str(exc), name) from None


def connection_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The connection fields of `raw` (Airflow's names), each checked: BadField naming a bad
    one. The extra comes back as an object (given as one or as its JSON text)."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in TEXT_LIMITS:
            out[name] = None if value is None else _text(value, name, TEXT_LIMITS[name])
        elif name == "port":
            out[name] = _port(value)
        elif name == "extra":
            out[name] = _extra(value)
        else:
            raise BadField(f"unknown field {name!r}; allowed: {sorted(CONN_FIELDS)}", name)
    if "conn_type" in out and not out["conn_type"]:
        raise BadField(
            "conn_type must name the connection's type (postgres, http, ...)", "conn_type"
        )
    return out


def new_connection(conn_id: str, fields: Mapping[str, Any]) -> Connection:
    """A connection from checked `fields`, which must name its type."""
    if not fields.get("conn_type"):
        raise BadField("conn_type is required (postgres, http, ...)", "conn_type")
    return Connection.from_fields(conn_id, fields)


def _port(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise BadField("port must be an integer from 1 to 65535, or null", "port")
    return value


def _extra(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        value = _parse_extra(value) if value.strip() else {}
    if value is not None and not isinstance(value, dict):
        raise BadField("extra must be a JSON object, or its JSON text", "extra")
    if value is not None and json_depth(value) > MAX_JSON_DEPTH:
        raise BadField(f"extra is nested more than {MAX_JSON_DEPTH} deep", "extra")
    return value


def _parse_extra(text: str) -> Any:
    def finite_only(name: str) -> Any:
        raise BadField(f"extra: numbers must be finite (got {name})", "extra")

    try:
        return json.loads(text, parse_constant=finite_only)
    except RecursionError:
        raise BadField(f"extra is nested more than {MAX_JSON_DEPTH} deep", "extra") from None
    except ValueError as exc:
        raise BadField(f"extra is not JSON: {exc}", "extra") from None


def form_connection_fields(form: Mapping[str, str]) -> dict[str, Any]:
    """The connection fields of a page's form: an empty port is none; an empty password is
    left out (the stored one is kept) unless `clear_password` is ticked."""
    raw: dict[str, Any] = {name: form.get(name, "") for name in (*TEXT_LIMITS, "extra")}
    port = form.get("port", "").strip()
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        raise BadField(f"port must be a whole number from 1 to 65535, got {port[:20]!r}", "port")
    raw["port"] = int(port) if port else None
    if not raw["password"]:
        del raw["password"]
        if form.get("clear_password"):
            raw["password"] = None
    return connection_fields(raw)
