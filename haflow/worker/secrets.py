"""The worker's side of `Variable.get` / `Connection.get` (`haflow.dag.secrets`).

One UNIX socket per runner, in its private folder (mode 0700: only the worker's user reaches
it), answers the attempts that runner has admitted, each request naming its attempt's folder.
The value comes from this process's environment override (`HAFLOW_VAR_<KEY>`,
`HAFLOW_CONN_<ID>`) or else the metastore, decrypted with this node's `[core] fernet_key`.
Before answering, the secret part of the value (a connection's password and sensitive extra, a
variable whose key looks sensitive: `haflow.core.secrets`) is added to the masks of that
attempt's log, so the task cannot print it before it is masked.
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from haflow.core.secrets import (
    CONN_ENV_PREFIX,
    VAR_ENV_PREFIX,
    Connection,
    env_name,
    is_sensitive,
)
from haflow.errors import ConfigError, HaflowError, NotFound
from haflow.worker.files import SECRETS_SOCKET

log = logging.getLogger(__name__)

MAX_REQUEST = 4096


class Masks(Protocol):
    def mask(self, values: list[str]) -> None: ...


class SecretSource:
    """Where values come from: overrides in `environ`, then the metastore through `variable`
    and `connection` lookups (raising NotFound when there is none)."""

    def __init__(
        self,
        variable: Callable[[str], str],
        connection: Callable[[str], Connection],
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._variable = variable
        self._connection = connection
        self.environ = environ

    def variable(self, key: str) -> tuple[str, list[str]]:
        """The value and what of it to mask."""
        value = self.environ.get(env_name(VAR_ENV_PREFIX, key))
        if value is None:
            value = self._variable(key)
        return value, [value] if is_sensitive(key) else []

    def connection(self, conn_id: str) -> tuple[Connection, list[str]]:
        text = self.environ.get(env_name(CONN_ENV_PREFIX, conn_id))
        conn = Connection.from_env(conn_id, text) if text is not None else self._connection(conn_id)
        return conn, conn.secrets()


def repository_source(repo: Any) -> SecretSource:
    """Values from `repo` (a Repository with this node's keys)."""
    return SecretSource(lambda k: repo.variables.get(k).value, lambda c: repo.connections.get(c))


class SecretServer:
    """Serves the admitted attempts' requests from a thread; `close` stops it."""

    def __init__(self, folder: Path, source: SecretSource) -> None:
        self.path = Path(folder, SECRETS_SOCKET)
        self.source = source
        self._attempts: dict[str, Masks] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST)
                reply = server.answer(line)
                self.wfile.write((json.dumps(reply) + "\n").encode("utf-8"))

        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        except OSError as exc:  # a UNIX socket's path holds at most 107 bytes
            raise ConfigError(
                f"cannot open the socket tasks read secrets from at {self.path}: {exc}; "
                "if the path is long, point TMPDIR at a shorter folder"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="secrets", daemon=True
        )
        self._thread.start()

    def admit(self, attempt_folder: str, masks: Masks) -> None:
        with self._lock:
            self._attempts[attempt_folder] = masks

    def forget(self, attempt_folder: str) -> None:
        with self._lock:
            self._attempts.pop(attempt_folder, None)

    def answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            attempt, kind, name = request["attempt"], request["kind"], request["name"]
        except (ValueError, KeyError, TypeError):
            return {"error": "a request is one JSON line: {attempt, kind, name}"}
        with self._lock:
            masks = self._attempts.get(attempt)
        if masks is None:
            return {"error": f"{attempt!r} is not an attempt this worker runs now"}
        try:
            if kind == "variable":
                value, secret = self.source.variable(str(name))
                reply: dict[str, Any] = {"value": value}
            elif kind == "connection":
                conn, secret = self.source.connection(str(name))
                reply = {"connection": conn.to_json()}
            else:
                return {"error": f"unknown kind {kind!r}: variable or connection"}
        except NotFound as exc:
            return {"error": str(exc), "missing": True}
        except HaflowError as exc:  # the metastore away, a key that cannot decrypt
            log.warning("%s %r asked by attempt %s: %s", kind, name, attempt, exc)
            return {"error": f"{kind} {name!r}: {exc}"}
        masks.mask(secret)
        return reply

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)
