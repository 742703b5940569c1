"""DAG rows, pausing and import errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from haflow.errors import InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import (
    DagCode,
    DagRecord,
    DagRow,
    DagVersionRow,
    ImportErrorRow,
)
from haflow.metastore.repository._base import (
    _Base,
    _dag_row,
    _dag_values,
    _event,
)

log = logging.getLogger(__name__)


class DagQueries(_Base):
    def sync(
        self,
        dags: Sequence[DagRecord],
        errors: Sequence[tuple[str, int | None, str]],
        now: datetime,
        epoch: int | None = None,
        *,
        pending_files: Sequence[str] = (),
        code: Mapping[str, DagCode] | None = None,
    ) -> None:
        """Write what the DAG folder holds now; DAGs gone from it become inactive, except those
        of `pending_files` (listed, not parsed yet: they stay as they are).

        Each DAG's code version (`code`, by hash) is stored once and becomes the version its
        new runs are created with, unless the DAG had it before and has moved on since: a
        master whose DAGs folder is stale never takes a DAG back (`haflow dags push` can)."""
        with self._tx(epoch, now) as conn:
            current = {
                r.dag_id: r.code_hash for r in conn.execute(select(m.Dag.dag_id, m.Dag.code_hash))
            }
            self._store_code(conn, {d.code_hash for d in dags if d.code_hash}, code or {}, now)
            had = self._versions_had(conn, [d.dag_id for d in dags])
            for d in dags:
                values = _dag_values(d, now)
                was = current.get(d.dag_id)
                if d.code_hash and d.code_hash != was and (d.dag_id, d.code_hash) in had:
                    log.warning(
                        "DAG %s: %s holds code version %s, which the DAG has had before and "
                        "left for %s; the metastore keeps %s (is this master's DAGs folder "
                        "stale? `haflow dags push` rolls a DAG back)",
                        d.dag_id,
                        d.fileloc,
                        d.code_hash[:12],
                        (was or "")[:12],
                        (was or "")[:12],
                    )
                    values = {"is_active": True, "parsed_at": now}
                elif d.code_hash and d.code_hash != was:
                    self._new_version(conn, d.dag_id, d.code_hash, was, now, epoch)
                if d.dag_id in current:
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

    def _store_code(
        self, conn: Connection, hashes: set[str], code: Mapping[str, DagCode], now: datetime
    ) -> None:
        if not hashes:
            return
        stored = set(
            conn.execute(select(m.DagCode.hash).where(m.DagCode.hash.in_(hashes))).scalars()
        )
        for h in sorted(hashes - stored):
            c = code.get(h)
            if c is None:
                raise NotFound(f"code version {h[:12]} was named but not given")
            conn.execute(
                insert(m.DagCode).values(
                    hash=c.hash, entry=c.entry, size=c.size, content=c.packed, created_at=now
                )
            )

    def _versions_had(self, conn: Connection, dag_ids: Sequence[str]) -> set[tuple[str, str]]:
        if not dag_ids:
            return set()
        v = m.DagVersion
        rows = conn.execute(select(v.dag_id, v.code_hash).where(v.dag_id.in_(dag_ids)))
        return {(r.dag_id, r.code_hash) for r in rows}

    def _new_version(
        self,
        conn: Connection,
        dag_id: str,
        code_hash: str,
        was: str | None,
        now: datetime,
        epoch: int | None,
    ) -> None:
        conn.execute(
            insert(m.DagVersion).values(dag_id=dag_id, code_hash=code_hash, created_at=now)
        )
        detail = {"code_hash": code_hash, "previous": was}
        self._emit(
            conn,
            [_event("dag.version", self.actor, now, epoch=epoch, dag_id=dag_id, detail=detail)],
        )

    def versions(self, dag_id: str) -> list[DagVersionRow]:
        """The code versions DAG `dag_id` has had, newest first."""
        dag = self._dag(dag_id)
        v, c, r = m.DagVersion, m.DagCode, m.DagRun
        runs = (
            select(func.count())
            .where(r.dag_id == v.dag_id, r.code_hash == v.code_hash)
            .scalar_subquery()
        )
        stmt = (
            select(v.code_hash, v.created_at, c.entry, c.size, runs.label("runs"))
            .join(c, c.hash == v.code_hash)
            .where(v.dag_id == dag_id)
            .order_by(v.created_at.desc(), v.code_hash)
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return [
            DagVersionRow(
                dag_id,
                x.code_hash,
                x.entry,
                x.size,
                x.created_at,
                x.runs,
                x.code_hash == dag.code_hash,
            )
            for x in rows
        ]

    def version(self, dag_id: str, prefix: str | None = None) -> DagVersionRow:
        """The version of DAG `dag_id` whose hash starts with `prefix` (at least 6 hex
        digits; default: its version now)."""
        versions = self.versions(dag_id)
        if prefix is None:
            found = [v for v in versions if v.current]
            if not found:
                raise NotFound(f"DAG {dag_id!r} has no code version yet")
            return found[0]
        if len(prefix) < 6:
            raise InvalidRequest(f"a version is named by at least 6 digits of its hash: {prefix!r}")
        found = [v for v in versions if v.code_hash.startswith(prefix.lower())]
        if len(found) > 1:
            raise InvalidRequest(f"{prefix!r} names {len(found)} versions of {dag_id!r}")
        if not found:
            raise NotFound(
                f"DAG {dag_id!r} has no code version {prefix!r} (see `haflow dags versions`)"
            )
        return found[0]

    def code(self, code_hash: str) -> DagCode:
        """Code version `code_hash`, packed (`haflow.dag.bundle.Bundle.unpack`)."""
        with self._tx() as conn:
            row = conn.execute(select(m.DagCode).where(m.DagCode.hash == code_hash)).first()
        if row is None:
            raise NotFound(f"no DAG code version {code_hash[:12]} in the metastore")
        return DagCode(row.hash, row.entry, row.size, bytes(row.content))

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
