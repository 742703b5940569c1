"""Variables and Connections as tasks and users see them, and what of them is secret.

A Variable is a named text value; a Connection is how to reach a system (type, host, port,
login, password, schema, extra JSON), written as a URI as in Airflow:
`postgresql://user:pass@host:5432/db?sslmode=require` (`conn_type://login:password@host:port/
schema?extra`, each part percent-encoded). What is secret, and so masked in logs, lists and
pages: a connection's password, the fields of its extra whose names look sensitive, and the
value of a variable whose key looks sensitive (Airflow's rule: `SENSITIVE_WORDS`). Values
shorter than `MIN_MASKED` characters are not masked in logs (masking "a" would blank every
log); they are still encrypted and hidden from Viewers like any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from haflow.core.ids import check_name
from haflow.errors import InvalidRequest

MASK = "***"
MIN_MASKED = 5
SENSITIVE_WORDS = (
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
    "keyfile_dict",
    "service_account",
)
VAR_ENV_PREFIX = "HAFLOW_VAR_"
CONN_ENV_PREFIX = "HAFLOW_CONN_"
MAX_VALUE_CHARS = 1_000_000


def is_sensitive(name: str) -> bool:
    """Whether a variable key or an extra field named `name` holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_WORDS)


def check_variable_key(key: object) -> str:
    return check_name(key, "a variable's key")


def check_conn_id(conn_id: object) -> str:
    return check_name(conn_id, "a connection's id")


def check_value(value: object, what: str) -> str:
    if isinstance(value, str) and len(value) <= MAX_VALUE_CHARS and "\x00" not in value:
        return value
    raise InvalidRequest(f"{what} must be text of at most {MAX_VALUE_CHARS} characters")


def env_name(prefix: str, name: str) -> str:
    """The environment variable that overrides variable or connection `name`:
    HAFLOW_VAR_<KEY> / HAFLOW_CONN_<ID>, upper-cased, `.` and `-` read as `_`."""
    return prefix + re.sub(r"[.\-]", "_", name).upper()


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str = ""
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    description: str = ""

    @classmethod
    def from_uri(cls, conn_id: str, uri: str, description: str = "") -> Connection:
        """Read Airflow's URI form; InvalidRequest saying what is wrong with it."""
        if not isinstance(uri, str) or "://" not in uri:
            raise InvalidRequest(
                f"connection {conn_id!r}: a URI looks like type://host, got no '://'"
            )
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError as exc:
            raise InvalidRequest(f"connection {conn_id!r}: bad URI: {exc}") from None
        conn_type = parts.scheme.replace("-", "_")
        if not conn_type:
            raise InvalidRequest(f"connection {conn_id!r}: the URI names no type (type://...)")
        extra: dict[str, Any] = {}
        query = parse_qsl(parts.query, keep_blank_values=True)
        if len(query) == 1 and query[0][0] == "__extra__":
            extra = _extra_object(conn_id, query[0][1])
        else:
            extra = dict(query)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            conn_id=conn_id,
            conn_type=conn_type,
            host=unquote(parts.hostname) if parts.hostname else None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            schema=unquote(path) or None,
            port=port,
            extra=extra,
            description=description,
        )

    @classmethod
    def from_env(cls, conn_id: str, text: str) -> Connection:
        """An override's value: a URI, or a JSON object of the fields (Airflow reads both)."""
        if text.lstrip().startswith("{"):
            fields = _extra_object(conn_id, text)
            return cls.from_fields(conn_id, fields)
        return cls.from_uri(conn_id, text)

    @classmethod
    def from_fields(cls, conn_id: str, fields: Mapping[str, Any]) -> Connection:
        """From API or JSON fields (Airflow's names: conn_type, host, login, password, schema,
        port, extra (an object or its JSON text), description); InvalidRequest naming a bad
        one."""
        known = {"conn_type", "host", "login", "password", "schema", "port", "extra"}
        known |= {"description", "connection_id", "conn_id"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise InvalidRequest(f"connection {conn_id!r}: unknown field(s) {', '.join(unknown)}")
        text = {}
        for name in ("conn_type", "host", "login", "password", "schema", "description"):
            value = fields.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidRequest(f"connection {conn_id!r}: {name} must be a string")
            text[name] = value
        port = fields.get("port")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise InvalidRequest(f"connection {conn_id!r}: port must be from 1 to 65535")
        extra = fields.get("extra")
        if isinstance(extra, str):
            extra = _extra_object(conn_id, extra) if extra.strip() else {}
        if extra is not None and not isinstance(extra, dict):
            raise InvalidRequest(f"connection {conn_id!r}: extra must be a JSON object")
        if not text["conn_type"]:
            raise InvalidRequest(f"connection {conn_id!r}: conn_type is required")
        return cls(
            conn_id=conn_id,
            conn_type=text["conn_type"] or "",
            host=text["host"] or None,
            login=text["login"] or None,
            password=text["password"] or None,
            schema=text["schema"] or None,
            port=port,
            extra=dict(extra or {}),
            description=text["description"] or "",
        )

    def get_uri(self) -> str:
        """The URI form (Airflow's): the extra as query parameters when they are all strings,
        else as `__extra__=<JSON>`."""
        uri = f"{self.conn_type.replace('_', '-')}://"
        if self.login is not None or self.password is not None:
            uri += quote(self.login or "", safe="")
            if self.password is not None:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        uri += quote(self.host or "", safe="")
        if self.port is not None:
            uri += f":{self.port}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        if self.extra:
            if all(isinstance(v, str) for v in self.extra.values()):
                uri += "?" + urlencode(self.extra)
            else:
                uri += "?" + urlencode({"__extra__": json.dumps(self.extra)})
        return uri

    def secrets(self) -> list[str]:
        """The values of this connection to mask: its password and its sensitive extra."""
        out = [self.password] if self.password else []
        out += sensitive_values(self.extra)
        return out

    def masked(self) -> Connection:
        """This connection with its secrets replaced by MASK (for showing)."""
        return replace(
            self,
            password=MASK if self.password else None,
            extra=mask_extra(self.extra),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "host": self.host,
            "login": self.login,
            "password": self.password,
            "schema": self.schema,
            "port": self.port,
            "extra": self.extra,
            "description": self.description,
        }


def _extra_object(conn_id: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"connection {conn_id!r}: extra is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"connection {conn_id!r}: extra must be a JSON object")
    return value


def mask_extra(value: Any, name: str = "") -> Any:
    """`value` (an extra, at any depth) with the values under sensitive names masked."""
    if name and is_sensitive(name):
        return MASK
    if isinstance(value, dict):
        return {k: mask_extra(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_extra(v) for v in value]
    return value


def sensitive_values(value: Any, name: str = "") -> list[str]:
    """The strings under sensitive names in `value` (an extra), at any depth."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in sensitive_values(v, str(k) or name)]
    if isinstance(value, list):
        return [s for v in value for s in sensitive_values(v, name)]
    if name and is_sensitive(name) and value is not None and not isinstance(value, bool):
        return [str(value)]
    return []


class Masker:
    """Replaces known secret values in text by MASK: each value, and its percent-encoded
    form (as it appears in a URI), when at least MIN_MASKED characters long."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = set()
        for v in values:
            for form in (v, quote(v, safe=""), json.dumps(v)[1:-1]):
                if len(form) >= MIN_MASKED and form not in self._values:
                    new.add(form)
        if new:
            self._values |= new
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in longest_first))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)
