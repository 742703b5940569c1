"""What every query group shares: transactions, the fencing check, event rows, lookups.

Invariants kept by the repository:
- a leader's transaction first re-checks its fencing epoch on the `leader` row, in the same
  transaction (`_fence`); a mismatch rolls everything back and raises FencedOut;
- attempts are claimed by conditional updates on (task instance, attempt, epoch, state) and
  reported on (task instance, attempt, state, worker), so a duplicate or stale message, a
  message naming another epoch, or a zombie's late report changes nothing;
- driver errors leave the repository as haflow errors, raised `from` the original.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, StatementError

from haflow.core.notices import NOTIFIABLE, matching, notification_key
from haflow.errors import (
    BackendUnavailable,
    ConcurrentChange,
    FencedOut,
    InvalidRequest,
    MetastoreError,
    NotFound,
)
from haflow.metastore import models as m
from haflow.metastore.records import (
    DagRecord,
    DagRow,
    RunRow,
    TIRow,
)

Event = dict[str, Any]
_INSERT_EVENT = insert(m.Event)  # built once: every claim, report and tick writes events
_DAG_RULES = select(m.Dag.dag_id, m.Dag.notify).where(
    m.Dag.dag_id.in_(bindparam("ids", expanding=True)), m.Dag.notify != "[]"
)
_KNOWN_KEYS = select(m.Notification.key).where(
    m.Notification.key.in_(bindparam("keys", expanding=True))
)


def _event(kind: str, actor: str, now: datetime, **fields: Any) -> Event:
    detail = fields.pop("detail", "")
    if not isinstance(detail, str):
        detail = json.dumps(detail, default=str)
    base = {"dag_id": None, "run_id": None, "task_id": None, "attempt": None, "epoch": None}
    return {**base, **fields, "ts": now, "kind": kind, "actor": actor, "detail": detail}


def refused_value(exc: BaseException) -> bool:
    """Whether `exc` is the metastore refusing a row's values (a constraint, a length, a type,
    a number out of range): what one DAG's or one run's data causes, unlike the backend
    failing (OperationalError, a lost connection), which is every DAG's."""
    if isinstance(exc, (IntegrityError, DataError, OverflowError)):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


class _Base:
    """One query group: the engine it draws connections from, the cluster its rows belong to,
    and the `actor` named in the events it writes."""

    def __init__(self, engine: Engine, *, cluster: str = "default", actor: str = "cli") -> None:
        self.engine = engine
        self.cluster = cluster
        self.actor = actor

    @contextmanager
    def _tx(self, epoch: int | None = None, now: datetime | None = None) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                if epoch is not None:
                    assert now is not None
                    self._fence(conn, epoch, now)
                yield conn
        except (FencedOut, MetastoreError, NotFound, InvalidRequest):
            raise
        except OperationalError as exc:
            raise BackendUnavailable(f"metastore unreachable: {exc.orig}") from exc
        except IntegrityError as exc:
            raise MetastoreError(f"metastore refused a write: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise BackendUnavailable(f"metastore connection lost: {exc.orig}") from exc
            raise MetastoreError(f"metastore error: {exc.orig}") from exc
        except StatementError as exc:  # a value its column's type cannot take (never sent)
            raise MetastoreError(f"metastore refused a value: {exc.orig}") from exc
        except OverflowError as exc:  # SQLite's driver, for an integer past 64 bits
            raise MetastoreError(f"metastore refused a value: {exc}") from exc

    def _fence(self, conn: Connection, epoch: int, now: datetime) -> None:
        res = conn.execute(
            update(m.Leader)
            .where(m.Leader.cluster == self.cluster, m.Leader.epoch == epoch)
            .values(renewed_at=now)
        )
        if res.rowcount != 1:
            raise FencedOut(
                f"scheduler {self.actor} holds epoch {epoch} of cluster {self.cluster!r}, "
                "but the leader row has moved on: stepping down"
            )

    def _emit(self, conn: Connection, events: Sequence[Event]) -> None:
        """Write `events`, and the notifications they call for (the outbox), in `conn`'s
        transaction: a state change and its notifications commit together or not at all."""
        if events:
            conn.execute(_INSERT_EVENT, list(events))
            notifiable = [e for e in events if e["kind"] in NOTIFIABLE and e["dag_id"]]
            if notifiable:
                _outbox(conn, notifiable)

    def _dag(self, dag_id: str) -> DagRow:
        with self._tx() as conn:
            row = conn.execute(select(m.Dag).where(m.Dag.dag_id == dag_id)).first()
        if row is None:
            raise NotFound(
                f"no DAG {dag_id!r} in the metastore (is the scheduler running, "
                "and is the file in the DAGs folder? see `haflow dags list`)"
            )
        return _dag_row(row)

    def _run(self, dag_id: str, run_id: str) -> RunRow:
        with self._tx() as conn:
            row = conn.execute(
                select(m.DagRun).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"DAG {dag_id!r} has no run {run_id!r} (see `haflow dags list-runs`)")
        return _run_row(row)

    def _ti_info(
        self, conn: Connection, ids: Sequence[int]
    ) -> dict[int, tuple[str, str, str, str]]:
        out = {}
        for chunk in _chunks(list(ids), 500):
            rows = conn.execute(
                select(
                    m.TaskInstance.id,
                    m.TaskInstance.dag_id,
                    m.DagRun.run_id,
                    m.TaskInstance.task_id,
                    m.TaskInstance.queue,
                )
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(m.TaskInstance.id.in_(chunk))
            )
            out.update({r.id: (r.dag_id, r.run_id, r.task_id, r.queue) for r in rows})
        return out

    def _ti_event(
        self,
        conn: Connection,
        kind: str,
        ti_id: int,
        attempt: int,
        epoch: int | None,
        now: datetime,
        detail: Any,
        actor: str | None = None,
    ) -> Event:
        # a message may name a task instance that no longer exists (its run was deleted)
        dag_id, run_id, task_id, _ = self._ti_info(conn, [ti_id]).get(ti_id, (None,) * 4)
        return _event(
            kind,
            actor or self.actor,
            now,
            epoch=epoch,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            attempt=attempt,
            detail=detail,
        )


def _outbox(conn: Connection, events: Sequence[Event]) -> None:
    """One notification row per (event, target its DAG's rules name). An event written
    again (it cannot be, state changes are conditional) would find its key taken and add
    nothing, rather than fail the transaction that carries a state change."""
    ids = sorted({e["dag_id"] for e in events})
    rules = {d: json.loads(n) for d, n in conn.execute(_DAG_RULES, {"ids": ids})}
    if not rules:
        return
    found = [
        (e, target)
        for e in events
        for target in matching(rules.get(e["dag_id"], []), e["kind"], e["task_id"])
    ]
    if not found:
        return
    created = _runs_created(conn, {(e["dag_id"], e["run_id"]) for e, _ in found})
    rows: dict[str, dict[str, Any]] = {}
    for e, target in found:
        row = _notification(e, target, created.get((e["dag_id"], e["run_id"]), ""))
        rows.setdefault(row["key"], row)
    if rows:
        taken = set(conn.execute(_KNOWN_KEYS, {"keys": list(rows)}).scalars())
        new = [r for k, r in rows.items() if k not in taken]
        if new:
            conn.execute(insert(m.Notification), new)


def _runs_created(conn: Connection, runs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """When each of `runs` (dag id, run id) was created, as text."""
    dags, ids = sorted({d for d, _ in runs}), sorted({r for _, r in runs})
    rows = conn.execute(
        select(m.DagRun.dag_id, m.DagRun.run_id, m.DagRun.created_at).where(
            m.DagRun.dag_id.in_(dags), m.DagRun.run_id.in_(ids)
        )
    )
    return {(d, r): c.isoformat() for d, r, c in rows if (d, r) in runs}


def _notification(e: Event, target: dict[str, Any], run_created: str) -> dict[str, Any]:
    detail = json.loads(e["detail"]) if e["detail"] else {}
    run_event = e["kind"].startswith("run.")
    generation = int(detail.get("revision", 0)) if run_event else int(e["attempt"] or 0)
    key = notification_key(
        e["kind"], e["dag_id"], e["run_id"], e["task_id"], generation, target, run_created
    )
    ident = {
        "key": key,
        "event": e["kind"],
        "dag_id": e["dag_id"],
        "run_id": e["run_id"],
        "task_id": e["task_id"],
        "attempt": e["attempt"],
    }
    payload = {**ident, "ts": e["ts"].isoformat(), "detail": detail}
    return {
        **ident,
        "target": json.dumps(target, sort_keys=True),
        "payload": json.dumps(payload, default=str),
        "state": "pending",
        "tries": 0,
        "claim_epoch": None,
        "due_at": e["ts"],
        "created_at": e["ts"],
        "ended_at": None,
        "error": "",
    }


def _checked(res: Any, expected: int, what: str) -> None:
    if res.rowcount not in (expected, -1):
        raise ConcurrentChange(
            f"{what}: {res.rowcount} rows matched, expected {expected}; another writer changed "
            "them concurrently, the transaction was rolled back"
        )


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _attempt_rows(*leading: Any) -> Select[Any]:
    """A select of attempts (after the `leading` columns), each with its result column: the
    value it returned, if it succeeded with one; read into AttemptRow with `_pick`."""
    a, res = m.TaskAttempt, m.TaskResult
    return (
        select(*leading, a, res.value.label("result"))
        .select_from(a)
        .outerjoin(res, (res.ti_id == a.ti_id) & (res.attempt == a.attempt))
    )


def _pick(obj: Any, cls: type) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(cls)}


def _as_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _code_now(dag_id: str) -> Any:
    """The DAG's code version now, read by the statement that creates a run: the run's own
    for good (`dag_run.code_hash`)."""
    return select(m.Dag.code_hash).where(m.Dag.dag_id == dag_id).scalar_subquery()


def _dag_values(d: DagRecord, now: datetime) -> dict[str, Any]:
    return dict(
        fileloc=d.fileloc,
        schedule=d.schedule,
        start_date=d.start_date,
        end_date=d.end_date,
        catchup=d.catchup,
        timezone=d.timezone,
        max_active_runs=d.max_active_runs,
        tags=json.dumps(d.tags),
        description=d.description,
        fingerprint=d.fingerprint,
        structure=json.dumps(d.structure),
        notify=json.dumps(d.notify),
        code_hash=d.code_hash or None,
        is_active=True,
        parsed_at=now,
    )


def _dag_row(r: Any) -> DagRow:
    return DagRow(
        r.dag_id,
        r.fileloc,
        r.schedule,
        r.is_paused,
        r.is_active,
        r.max_active_runs,
        r.last_fire_at,
        json.loads(r.tags or "[]"),
        r.timezone,
        r.code_hash,
    )


def _run_row(r: Any) -> RunRow:
    return RunRow(
        r.id,
        r.dag_id,
        r.run_id,
        r.run_type,
        r.state,
        json.loads(r.conf or "{}"),
        r.data_interval_start,
        r.data_interval_end,
        r.created_at,
        r.started_at,
        r.ended_at,
        r.code_hash,
    )


def _ti_row(ti: Any, run_id: str) -> TIRow:
    return TIRow(
        ti.id,
        ti.dag_id,
        run_id,
        ti.task_id,
        ti.state,
        ti.attempt,
        ti.failures,
        ti.retries,
        ti.worker_id,
        ti.queued_at,
        ti.started_at,
        ti.ended_at,
        ti.pool,
        ti.pool_slots,
    )
