"""Variables: named values for tasks, kept as Fernet tokens (`haflow.metastore.crypto`)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from haflow.core.ids import check_text
from haflow.core.secrets import check_value, check_variable_key
from haflow.errors import NotFound, SecretKeyError
from haflow.metastore import models as m
from haflow.metastore.crypto import Crypto
from haflow.metastore.records import VariableRow
from haflow.metastore.repository._base import _Base, _event


class VariableQueries(_Base):
    def __init__(self, engine: Engine, *, crypto: Crypto, **on: str) -> None:
        super().__init__(engine, **on)
        self.crypto = crypto

    def _row(self, r: Any) -> VariableRow:  # a row of select(m.Variable)
        value = self.crypto.decrypt(r.val, f"variable {r.key!r}")
        return VariableRow(r.key, value, r.description, r.updated_at)

    def count(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(m.Variable)).scalar_one())

    def list(self, limit: int | None = None, offset: int = 0) -> list[VariableRow]:
        """Variables by key, values decrypted."""
        query = select(m.Variable).order_by(m.Variable.key).offset(offset).limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [self._row(r) for r in rows]

    def get(self, key: str) -> VariableRow:
        with self._tx() as conn:
            row = conn.execute(select(m.Variable).where(m.Variable.key == key)).first()
        if row is None:
            raise NotFound(f"no variable {key!r}")
        return self._row(row)

    def set(
        self, key: str, value: str, now: datetime, description: str | None = None
    ) -> VariableRow:
        """Create variable `key` or change its value (and description, when given)."""
        self.set_many({key: value}, now, {key: description} if description is not None else {})
        return self.get(key)

    def set_many(
        self,
        values: Mapping[str, str],
        now: datetime,
        descriptions: Mapping[str, str | None] | None = None,
    ) -> None:
        """Set every variable of `values` in one transaction (all or none)."""
        descriptions = descriptions or {}
        checked = {
            check_variable_key(k): check_value(v, f"variable {k!r}") for k, v in values.items()
        }
        for text in descriptions.values():
            if text is not None:
                check_text(text, "description")
        with self._tx() as conn:
            found = set(
                conn.execute(select(m.Variable.key).where(m.Variable.key.in_(checked))).scalars()
            )
            for key, value in checked.items():
                row: dict[str, object] = {"val": self.crypto.encrypt(value), "updated_at": now}
                if descriptions.get(key) is not None:
                    row["description"] = descriptions[key]
                if key in found:
                    conn.execute(update(m.Variable).where(m.Variable.key == key).values(**row))
                else:
                    row.setdefault("description", "")
                    conn.execute(insert(m.Variable).values(key=key, **row))
            self._emit(
                conn, [_event("variable.set", self.actor, now, detail={"key": k}) for k in checked]
            )

    def delete(self, key: str, now: datetime) -> None:
        with self._tx() as conn:
            gone = conn.execute(delete(m.Variable).where(m.Variable.key == key)).rowcount
            if not gone:
                raise NotFound(f"no variable {key!r}")
            self._emit(conn, [_event("variable.deleted", self.actor, now, detail={"key": key})])

    def unreadable(self) -> builtins.list[str]:
        """The variables this node's keys cannot decrypt (empty when all can)."""
        out = []
        with self._tx() as conn:
            rows = conn.execute(select(m.Variable.key, m.Variable.val)).all()
        for key, token in rows:
            try:
                self.crypto.decrypt(token, key)
            except SecretKeyError:
                out.append(key)
        return out

    def rotate(self, now: datetime) -> int:
        """Re-encrypt every value under the first key, in one transaction; how many."""
        with self._tx() as conn:
            rows = conn.execute(select(m.Variable.key, m.Variable.val).with_for_update()).all()
            for key, token in rows:
                new = self.crypto.rotate(token, f"variable {key!r}")
                conn.execute(update(m.Variable).where(m.Variable.key == key).values(val=new))
            detail = {"variables": len(rows)}
            self._emit(conn, [_event("variables.rotated", self.actor, now, detail=detail)])
        return len(rows)
