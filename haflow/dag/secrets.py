"""`Variable.get` and `Connection.get` in a task, as in Airflow.

A task's process has no metastore credentials (`haflow.worker.taskenv`): it asks its worker,
over the UNIX socket named by `HAFLOW_SECRETS_SOCKET` (in the worker's private folder), naming
its attempt's folder (`HAFLOW_ATTEMPT_FILES`). The worker reads and decrypts the value, and masks
what is secret in that attempt's log from then on (`haflow.worker.secrets`). Before the worker
is asked, an override in the task's own environment wins: `HAFLOW_VAR_<KEY>` (the value) and
`HAFLOW_CONN_<ID>` (a URI or a JSON object), upper-cased, `.` and `-` read as `_`. The worker
applies the same overrides from its own environment.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from haflow.core import secrets as core
from haflow.errors import HaflowError, NotFound

SOCKET_ENV = "HAFLOW_SECRETS_SOCKET"
ATTEMPT_ENV = "HAFLOW_ATTEMPT_FILES"
TIMEOUT_S = 30.0
_UNSET: Any = object()


class SecretsUnavailable(HaflowError):
    """No worker to ask: the code runs outside a task's attempt (at parse time, for example)."""


def ask(kind: str, name: str) -> dict[str, Any]:
    """The worker's answer for variable or connection `name`: {"value": ...} or
    {"connection": {...}}; NotFound when it has none; HaflowError with its reason."""
    path, folder = os.environ.get(SOCKET_ENV), os.environ.get(ATTEMPT_ENV)
    if not path or not folder:
        raise SecretsUnavailable(
            f"cannot read {kind} {name!r} here: {kind}s are read while a task runs on a worker "
            f"(or under `haflow tasks test`); elsewhere set {_env_of(kind, name)}"
        )
    request = json.dumps({"attempt": folder, "kind": kind, "name": name}) + "\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        try:
            s.connect(path)
            s.sendall(request.encode("utf-8"))
            answer = _read_line(s)
        except OSError as exc:
            raise HaflowError(f"cannot read {kind} {name!r} from the worker: {exc}") from None
    reply = json.loads(answer)
    if reply.get("missing"):
        raise NotFound(reply["error"])
    if "error" in reply:
        raise HaflowError(reply["error"])
    return dict(reply)


def _read_line(s: socket.socket) -> str:
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks).decode("utf-8")


def _env_of(kind: str, name: str) -> str:
    prefix = core.VAR_ENV_PREFIX if kind == "variable" else core.CONN_ENV_PREFIX
    return core.env_name(prefix, name)


class Variable:
    """`Variable.get("key")` in a task: the value (text), or `default_var` when there is no
    such variable (KeyError without one, as in Airflow); `deserialize_json=True` parses it."""

    @staticmethod
    def get(key: str, default_var: Any = _UNSET, deserialize_json: bool = False) -> Any:
        value = os.environ.get(_env_of("variable", key))
        if value is None:
            try:
                value = str(ask("variable", key)["value"])
            except NotFound:
                if default_var is _UNSET:
                    raise KeyError(f"variable {key!r} does not exist") from None
                return default_var
        return json.loads(value) if deserialize_json else value


@dataclass(frozen=True)
class Connection(core.Connection):
    """`Connection.get("conn_id")` in a task: its fields (`host`, `login`, `password`,
    `schema`, `port`, `extra`) and `get_uri()`; NotFound when there is none."""

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        text = os.environ.get(_env_of("connection", conn_id))
        if text is not None:
            return cls.from_env(conn_id, text)  # type: ignore[return-value]
        fields = ask("connection", conn_id)["connection"]
        return cls.from_fields(conn_id, fields)  # type: ignore[return-value]

    get_connection_from_secrets = get  # Airflow 2's name
