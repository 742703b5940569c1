"""DAG rows, pausing and import errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from haflow.metastore import models as m
from haflow.metastore.records import (
    DagRecord,
    DagRow,
    ImportErrorRow,
)
from haflow.metastore.repository._base import (
    _Base,
    _dag_row,
    _dag_values,
    _event,
)


class DagQueries(_Base):
    def sync(
        self,
        dags: Sequence[DagRecord],
        errors: Sequence[tuple[str, int | None, str]],
        now: datetime,
        epoch: int | None = None,
        *,
        pending_files: Sequence[str] = (),
    ) -> None:
        """Write what the DAG folder holds now; DAGs gone from it become inactive, except those
        of `pending_files` (listed, not parsed yet: they stay as they are)."""
        with self._tx(epoch, now) as conn:
            known = set(conn.execute(select(m.Dag.dag_id)).scalars())
            for d in dags:
                values = _dag_values(d, now)
                if d.dag_id in known:
                    conn.execute(update(m.Dag).where(m.Dag.dag_id == d.dag_id).values(**values))
                else:
                    conn.execute(insert(m.Dag).values(dag_id=d.dag_id, is_paused=False, **values))
            seen = [d.dag_id for d in dags]
            gone = [m.Dag.dag_id.not_in(seen)]
            if pending_files:
                gone.append(m.Dag.fileloc.not_in(list(pending_files)))
            conn.execute(update(m.Dag).where(*gone).values(is_active=False))
            conn.execute(delete(m.ImportError_))
            if errors:
                conn.execute(
                    insert(m.ImportError_),
                    [
                        {"fileloc": f, "line": ln, "message": msg, "ts": now}
                        for f, ln, msg in errors
                    ],
                )

    def all(self, *, active_only: bool = True) -> list[DagRow]:
        stmt = select(m.Dag).order_by(m.Dag.dag_id)
        if active_only:
            stmt = stmt.where(m.Dag.is_active.is_(True))
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return [_dag_row(r) for r in rows]

    def get(self, dag_id: str) -> DagRow:
        return self._dag(dag_id)

    def set_paused(self, dag_id: str, paused: bool, now: datetime) -> None:
        self._dag(dag_id)
        with self._tx() as conn:
            conn.execute(update(m.Dag).where(m.Dag.dag_id == dag_id).values(is_paused=paused))
            self._emit(
                conn,
                [
                    _event(
                        "dag.paused" if paused else "dag.unpaused", self.actor, now, dag_id=dag_id
                    )
                ],
            )

    def import_errors(self) -> list[ImportErrorRow]:
        with self._tx() as conn:
            rows = conn.execute(select(m.ImportError_).order_by(m.ImportError_.fileloc))
            return [ImportErrorRow(r.fileloc, r.line, r.message, r.ts) for r in rows]

    def fingerprints(self) -> dict[str, str]:
        """What the leader parsed: each active DAG's structure fingerprint."""
        with self._tx() as conn:
            rows = conn.execute(
                select(m.Dag.dag_id, m.Dag.fingerprint).where(m.Dag.is_active.is_(True))
            ).all()
        return {r.dag_id: r.fingerprint for r in rows}
