"""Connections: how tasks reach other systems; the password and the extra are kept as Fernet
tokens (`haflow.metastore.crypto`), the other fields as they are."""

from __future__ import annotations

import builtins
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from haflow.core.ids import check_text
from haflow.core.secrets import Connection, check_conn_id
from haflow.errors import Conflict, NotFound, SecretKeyError
from haflow.metastore import models as m
from haflow.metastore.crypto import Crypto
from haflow.metastore.repository._base import _Base, _event

_SECRET_COLUMNS = ("password", "extra")


class ConnectionQueries(_Base):
    def __init__(self, engine: Engine, *, crypto: Crypto, **on: str) -> None:
        super().__init__(engine, **on)
        self.crypto = crypto

    def _conn(self, r: Any) -> Connection:  # a row of select(m.Conn)
        what = f"connection {r.conn_id!r}"
        password = None if r.password is None else self.crypto.decrypt(r.password, what)
        extra = {} if r.extra is None else json.loads(self.crypto.decrypt(r.extra, what))
        return Connection(
            conn_id=r.conn_id,
            conn_type=r.conn_type,
            host=r.host,
            login=r.login,
            password=password,
            schema=r.schema,
            port=r.port,
            extra=extra,
            description=r.description,
        )

    def _values(self, c: Connection, now: datetime) -> dict[str, object]:
        check_text(c.description, "description")
        return {
            "conn_type": c.conn_type,
            "description": c.description,
            "host": c.host,
            "login": c.login,
            "password": None if c.password is None else self.crypto.encrypt(c.password),
            "schema": c.schema,
            "port": c.port,
            "extra": self.crypto.encrypt(json.dumps(c.extra)) if c.extra else None,
            "updated_at": now,
        }

    def count(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(m.Conn)).scalar_one())

    def list(self, limit: int | None = None, offset: int = 0) -> list[Connection]:
        query = select(m.Conn).order_by(m.Conn.conn_id).offset(offset).limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [self._conn(r) for r in rows]

    def get(self, conn_id: str) -> Connection:
        with self._tx() as conn:
            row = conn.execute(select(m.Conn).where(m.Conn.conn_id == conn_id)).first()
        if row is None:
            raise NotFound(f"no connection {conn_id!r}")
        return self._conn(row)

    def add(self, c: Connection, now: datetime, *, replace_existing: bool = False) -> Connection:
        """Store `c`; Conflict if its id is taken, unless `replace_existing`."""
        check_conn_id(c.conn_id)
        values = self._values(c, now)
        with self._tx() as conn:
            found = conn.execute(select(m.Conn.conn_id).where(m.Conn.conn_id == c.conn_id)).first()
            if found is not None and not replace_existing:
                raise Conflict(f"connection {c.conn_id!r} exists (delete it first, or update it)")
            if found is None:
                conn.execute(insert(m.Conn).values(conn_id=c.conn_id, **values))
            else:
                conn.execute(update(m.Conn).where(m.Conn.conn_id == c.conn_id).values(**values))
            detail = {"conn_id": c.conn_id, "conn_type": c.conn_type}
            self._emit(conn, [_event("connection.set", self.actor, now, detail=detail)])
        return c

    def update(self, conn_id: str, changes: dict[str, object], now: datetime) -> Connection:
        """Change the fields named in `changes` (a password left out is kept)."""
        current = self.get(conn_id)
        merged = {**current.to_json(), **changes}
        updated = Connection.from_fields(conn_id, merged)
        return self.add(replace(updated, conn_id=conn_id), now, replace_existing=True)

    def delete(self, conn_id: str, now: datetime) -> None:
        with self._tx() as conn:
            gone = conn.execute(delete(m.Conn).where(m.Conn.conn_id == conn_id)).rowcount
            if not gone:
                raise NotFound(f"no connection {conn_id!r}")
            detail = {"conn_id": conn_id}
            self._emit(conn, [_event("connection.deleted", self.actor, now, detail=detail)])

    def unreadable(self) -> builtins.list[str]:
        """The connections this node's keys cannot decrypt (empty when all can)."""
        out = []
        with self._tx() as conn:
            rows = conn.execute(select(m.Conn.conn_id, m.Conn.password, m.Conn.extra)).all()
        for conn_id, *tokens in rows:
            try:
                for token in tokens:
                    if token is not None:
                        self.crypto.decrypt(token, conn_id)
            except SecretKeyError:
                out.append(conn_id)
        return out

    def rotate(self, now: datetime) -> int:
        """Re-encrypt every password and extra under the first key, in one transaction."""
        with self._tx() as conn:
            rows = conn.execute(
                select(m.Conn.conn_id, m.Conn.password, m.Conn.extra).with_for_update()
            ).all()
            for conn_id, *tokens in rows:
                what = f"connection {conn_id!r}"
                new = {
                    col: None if token is None else self.crypto.rotate(token, what)
                    for col, token in zip(_SECRET_COLUMNS, tokens, strict=True)
                }
                conn.execute(update(m.Conn).where(m.Conn.conn_id == conn_id).values(**new))
            detail = {"connections": len(rows)}
            self._emit(conn, [_event("connections.rotated", self.actor, now, detail=detail)])
        return len(rows)
