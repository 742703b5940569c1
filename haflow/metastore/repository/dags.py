"""DAG rows, pausing and import errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import StatementError

from haflow.errors import InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import (
    DagCode,
    DagRecord,
    DagRow,
    DagVersionRow,
    ImportErrorRow,
    Presence,
)
from haflow.metastore.repository._base import (
    _Base,
    _dag_row,
    _dag_values,
    _event,
    refused_value,
)

log = logging.getLogger(__name__)


def _stale(d: DagRecord, was: str | None) -> None:
    log.warning(
        "DAG %s: %s holds code version %s, which the DAG has had before and left for %s; "
        "the metastore keeps %s (is this master's DAGs folder stale? `haflow dags push` "
        "rolls a DAG back)",
        d.dag_id,
        d.fileloc,
        d.code_hash[:12],
        (was or "")[:12],
        (was or "")[:12],
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
        code: Mapping[str, DagCode] | None = None,
        presence: Presence | None = None,
    ) -> dict[str, str]:
        """Write what this master's DAGs folder holds now; the DAGs whose rows the metastore
        refused for their values (DAG id -> why), each written under its own savepoint, so
        one DAG's values never keep the others (nor the import errors) out.

        Versions: each DAG's code version (`code`, by hash) is stored once and becomes the
        version its new runs are created with, unless the DAG had it before and has moved on
        since: a master whose folder is stale never takes a DAG back (`haflow dags push` can).

        Presence: a DAG missing from the folder becomes inactive, and an inactive one found
        there again active, only if this master had it (`presence`): it saw the DAG vanish or
        appear in its folder, or the DAG's version now came from this master's folder. A
        master that lacks a DAG added elsewhere, or still holds one removed elsewhere, is
        behind, and changes nothing. DAGs of `pending_files` (listed, not parsed yet) stay as
        they are. Without `presence`, the folder is the whole truth (one scheduler)."""
        p = presence or Presence(whole=True)
        refused: dict[str, str] = {}
        with self._tx(epoch, now) as conn:
            rows = {
                r.dag_id: r
                for r in conn.execute(select(m.Dag.dag_id, m.Dag.code_hash, m.Dag.is_active))
            }
            self._store_code(conn, {d.code_hash for d in dags if d.code_hash}, code or {}, now)
            had = self._versions_had(conn, [d.dag_id for d in dags])
            mine = self._from_here(conn, p.node)
            for d in dags:
                try:
                    with conn.begin_nested():  # one DAG's values never keep the others out
                        self._write(conn, d, rows.get(d.dag_id), had, mine, p, now, epoch)
                except (StatementError, OverflowError) as exc:
                    if not refused_value(exc):
                        raise  # the backend's fault, not this DAG's
                    refused[d.dag_id] = f"metastore refused its row: {getattr(exc, 'orig', exc)}"
                    log.error("DAG %s not synced: %s", d.dag_id, refused[d.dag_id])
            seen = {d.dag_id for d in dags}
            gone = [r for i, r in rows.items() if i not in seen]
            self._deactivate(conn, gone, p, mine, pending_files)
            conn.execute(delete(m.ImportError_))
            if errors:
                conn.execute(
                    insert(m.ImportError_),
                    [
                        {"fileloc": f, "line": ln, "message": msg, "ts": now}
                        for f, ln, msg in errors
                    ],
                )
        return refused

    def _write(
        self,
        conn: Connection,
        d: DagRecord,
        row: Any,
        had: set[tuple[str, str]],
        mine: set[str],
        p: Presence,
        now: datetime,
        epoch: int | None,
    ) -> None:
        """Write DAG `d`'s row (and its new version) as `sync` says; `row` is what the
        metastore had of it (None: a new DAG)."""
        was = row.code_hash if row is not None else None
        if row is None:
            values = _dag_values(d, now)
            conn.execute(insert(m.Dag).values(dag_id=d.dag_id, is_paused=False, **values))
        elif d.code_hash and d.code_hash != was and (d.dag_id, d.code_hash) in had:
            _stale(d, was)  # nothing changes: the metastore keeps its version
            return
        elif row.is_active or p.may_change(d.dag_id, d.dag_id in mine, was):
            values = _dag_values(d, now)
            conn.execute(update(m.Dag).where(m.Dag.dag_id == d.dag_id).values(**values))
        else:
            return  # inactive, and this master did not have it: removed elsewhere
        if d.code_hash and d.code_hash != was:
            tasks = len(d.structure.get("tasks", {}))
            self._new_version(conn, d.dag_id, d.code_hash, was, p.node, now, epoch, tasks)

    def _deactivate(
        self,
        conn: Connection,
        gone: Sequence[Any],
        p: Presence,
        mine: set[str],
        pending_files: Sequence[str],
    ) -> None:
        """Make the DAGs missing from the folder (`gone`) inactive, where this master may."""
        for row in gone:
            if not row.is_active or not p.may_change(row.dag_id, row.dag_id in mine, row.code_hash):
                continue  # inactive already, or added elsewhere and not here yet
            deactivate = update(m.Dag).where(m.Dag.dag_id == row.dag_id)
            if pending_files:
                deactivate = deactivate.where(m.Dag.fileloc.not_in(sorted(pending_files)))
            conn.execute(deactivate.values(is_active=False))

    def _from_here(self, conn: Connection, node: str) -> set[str]:
        """The DAGs whose version now came from `node`'s folder."""
        if not node:
            return set()
        v = m.DagVersion
        stmt = (
            select(v.dag_id)
            .join(m.Dag, (m.Dag.dag_id == v.dag_id) & (m.Dag.code_hash == v.code_hash))
            .where(v.created_by == node)
        )
        return set(conn.execute(stmt).scalars())

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
        node: str,
        now: datetime,
        epoch: int | None,
        tasks: int,
        *,
        rollback: bool = False,
    ) -> None:
        """Record that `dag_id` now has version `code_hash` (from `node`'s folder; "" when
        pushed); a `rollback` makes a version it had before current again."""
        if not rollback:
            conn.execute(
                insert(m.DagVersion).values(
                    dag_id=dag_id, code_hash=code_hash, created_at=now, created_by=node
                )
            )
        detail = {
            "code_hash": code_hash,
            "previous": was,
            "tasks": tasks,
            "by": node or "push",
            "rollback": rollback,
        }
        self._emit(
            conn,
            [_event("dag.version", self.actor, now, epoch=epoch, dag_id=dag_id, detail=detail)],
        )

    def push(
        self, dags: Sequence[DagRecord], code: Mapping[str, DagCode], now: datetime
    ) -> dict[str, str]:
        """Make each of `dags` active at its version (stored if new), as `haflow dags push`
        does. Unlike a folder's sync, a version the DAG had before becomes current again: a
        rollback, which a master's folder holding the newer file then cannot undo (that file
        is a version the DAG has left). Returns, per DAG: added, new version, rolled back or
        unchanged."""
        out = {}
        with self._tx() as conn:
            rows = {
                r.dag_id: r
                for r in conn.execute(select(m.Dag.dag_id, m.Dag.code_hash, m.Dag.is_active))
            }
            self._store_code(conn, {d.code_hash for d in dags if d.code_hash}, code, now)
            had = self._versions_had(conn, [d.dag_id for d in dags])
            for d in dags:
                row = rows.get(d.dag_id)
                was = row.code_hash if row is not None else None
                values = _dag_values(d, now)
                if row is None:
                    conn.execute(insert(m.Dag).values(dag_id=d.dag_id, is_paused=False, **values))
                else:
                    conn.execute(update(m.Dag).where(m.Dag.dag_id == d.dag_id).values(**values))
                back = (d.dag_id, d.code_hash) in had
                if d.code_hash != was:
                    tasks = len(d.structure.get("tasks", {}))
                    self._new_version(
                        conn, d.dag_id, d.code_hash, was, "", now, None, tasks, rollback=back
                    )
                out[d.dag_id] = (
                    "added"
                    if row is None
                    else "unchanged"
                    if d.code_hash == was
                    else "rolled back"
                    if back
                    else "new version"
                )
        return out

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
