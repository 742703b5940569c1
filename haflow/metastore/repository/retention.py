"""Retention: deleting what is older than a cutoff, in bounded batches, safely beside running
schedulers and workers.

Each batch is one short transaction that deletes rows named by primary key (selected oldest
first, at most `batch` of them), so no transaction holds many locks or much undo, and nothing
locks a range that a scheduler or worker writes into. Only what is over is deleted: runs that
ended (`success`, `failed`), with their task instances, attempts and logs (by the foreign
keys' ON DELETE CASCADE); events; notifications delivered or given up; login failures; web
sessions that expired or ended; DAG code versions stored before the cutoff that no DAG has
now and no run left uses (then a master's stale folder could bring such a version back: keep
the cutoff longer than any master stays stale). Every delete re-checks its condition, so a run
cleared (and reopened) between the select and the delete stays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from haflow.core.states import RunState
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.repository._base import _Base, _event

TABLES = ("runs", "versions", "events", "notifications", "logins", "sessions")
"""What `clean` can prune, in the order it does."""

_RUN_BATCH_SHARE = 10  # a run carries its task instances and logs: fewer per batch


def _what(table: str, cutoff: datetime) -> tuple[Any, Any]:
    """(primary key column, condition) of the rows of `table` older than `cutoff`."""
    if table == "runs":
        over = m.DagRun.state.in_([RunState.SUCCESS, RunState.FAILED])
        return m.DagRun.id, over & (m.DagRun.ended_at < cutoff)
    if table == "versions":
        return m.DagCode.hash, (m.DagCode.created_at < cutoff) & _unused(m.DagCode.hash)
    if table == "events":
        return m.Event.id, m.Event.ts < cutoff
    if table == "notifications":
        n = m.Notification
        return n.id, n.state.in_(["delivered", "failed"]) & (n.ended_at < cutoff)
    if table == "logins":
        return m.LoginFailure.id, m.LoginFailure.ts < cutoff
    if table == "sessions":
        s = m.WebSession
        return s.id, or_(s.expires_at < cutoff, s.ended_at < cutoff)
    raise InvalidRequest(f"unknown table {table!r}; choose from {', '.join(TABLES)}")


def _unused(code_hash: Any) -> Any:
    """No DAG has version `code_hash` now, and no run uses it."""
    current = select(m.Dag.dag_id).where(m.Dag.code_hash == code_hash)
    used = select(m.DagRun.id).where(m.DagRun.code_hash == code_hash)
    return ~current.exists() & ~used.exists()


class RetentionQueries(_Base):
    def count(self, table: str, cutoff: datetime) -> int:
        """How many rows of `table` a clean at `cutoff` would delete."""
        pk, cond = _what(table, cutoff)
        with self._tx() as conn:
            return int(conn.execute(select(func.count(pk)).where(cond)).scalar_one())

    def delete_batch(self, table: str, cutoff: datetime, batch: int) -> int:
        """Delete at most `batch` of `table`'s rows older than `cutoff` (oldest first), in one
        transaction; returns how many."""
        pk, cond = _what(table, cutoff)
        size = max(1, batch // _RUN_BATCH_SHARE) if table == "runs" else batch
        with self._tx() as conn:
            ids = list(conn.execute(select(pk).where(cond).order_by(pk).limit(size)).scalars())
            if not ids:
                return 0
            if table == "versions":  # the DAGs' records of having had them go first
                v = m.DagVersion
                conn.execute(delete(v).where(v.code_hash.in_(ids), _unused(v.code_hash)))
            return int(conn.execute(delete(pk.table).where(pk.in_(ids), cond)).rowcount)

    def clean(
        self,
        cutoff: datetime,
        tables: Sequence[str] = TABLES,
        *,
        batch: int = 1000,
        progress: Callable[[str, int, int], None] = lambda table, done, total: None,
        before_batch: Callable[[], None] = lambda: None,
    ) -> dict[str, int]:
        """Delete everything of `tables` older than `cutoff`, batch after batch; `progress`
        is told (table, deleted so far, rows there were) after each batch; `before_batch` is
        called before each (it may pause, or raise to stop). Returns the rows deleted per
        table."""
        for t in tables:
            _what(t, cutoff)  # an unknown table is refused before anything is deleted
        out = {}
        for t in tables:
            total, done = self.count(t, cutoff), 0
            while done < total:
                before_batch()
                n = self.delete_batch(t, cutoff, batch)
                if n == 0:
                    break  # the rest changed meanwhile (a run cleared, say)
                done += n
                progress(t, done, total)
            out[t] = done
        return out

    def delete_dag(
        self, dag_id: str, now: datetime, *, force: bool = False, batch: int = 1000
    ) -> int:
        """Delete DAG `dag_id`: its runs (with their task instances, attempts and logs),
        notifications and row; its events stay, with one `dag.deleted`. Refused while it has
        queued or running runs, unless `force` (their attempts are then taken away: workers
        stop them at their next heartbeat). Returns the runs deleted."""
        self._dag(dag_id)
        active = [RunState.QUEUED, RunState.RUNNING]
        with self._tx() as conn:
            # the DAG's row locked, then paused: from here the leader starts and creates none
            # of its runs (the planner skips paused DAGs), so the runs counted are all there is
            conn.execute(select(m.Dag.dag_id).where(m.Dag.dag_id == dag_id).with_for_update())
            busy = conn.execute(
                select(func.count(m.DagRun.id)).where(
                    m.DagRun.dag_id == dag_id, m.DagRun.state.in_(active)
                )
            ).scalar_one()
            if busy and not force:
                raise InvalidRequest(
                    f"DAG {dag_id!r} has {busy} queued or running run(s); wait for them, mark "
                    "them (`haflow dags mark-run`), or delete with --force"
                )
            conn.execute(update(m.Dag).where(m.Dag.dag_id == dag_id).values(is_paused=True))
        runs = 0
        size = max(1, batch // _RUN_BATCH_SHARE)
        while True:
            with self._tx() as conn:
                ids = list(
                    conn.execute(
                        select(m.DagRun.id).where(m.DagRun.dag_id == dag_id).limit(size)
                    ).scalars()
                )
                if not ids:
                    break
                conn.execute(delete(m.DagRun).where(m.DagRun.id.in_(ids)))
                runs += len(ids)
        with self._tx() as conn:
            conn.execute(select(m.Dag.dag_id).where(m.Dag.dag_id == dag_id).with_for_update())
            runs += conn.execute(delete(m.DagRun).where(m.DagRun.dag_id == dag_id)).rowcount or 0
            conn.execute(delete(m.Notification).where(m.Notification.dag_id == dag_id))
            conn.execute(delete(m.DagVersion).where(m.DagVersion.dag_id == dag_id))
            conn.execute(delete(m.Dag).where(m.Dag.dag_id == dag_id))
            detail = {"runs": runs, "forced": bool(busy)}
            self._emit(conn, [_event("dag.deleted", self.actor, now, dag_id=dag_id, detail=detail)])
        return runs

    def delete_run(self, dag_id: str, run_id: str, now: datetime) -> None:
        """Delete one finished run with its task instances, attempts, results and logs; its
        events stay, with one `run.deleted`. Conflict while it is queued or running (its
        attempts may be on workers: mark it first)."""
        with self._tx() as conn:
            row = conn.execute(
                select(m.DagRun.id, m.DagRun.state)
                .where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"DAG {dag_id!r} has no run {run_id!r}")
            if row.state in (RunState.QUEUED, RunState.RUNNING):
                raise Conflict(
                    f"run {run_id!r} of DAG {dag_id!r} is {row.state}: mark it success or failed "
                    "first, or wait for it to end"
                )
            conn.execute(delete(m.DagRun).where(m.DagRun.id == row.id))
            event = _event("run.deleted", self.actor, now, dag_id=dag_id, run_id=run_id)
            self._emit(conn, [event])
