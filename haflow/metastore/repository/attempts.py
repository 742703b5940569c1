"""Attempts as workers see them: claim, heartbeat, log, report; all conditional."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update

from haflow.core.attempt_end import (
    DEFAULT_POLICY,
    AfterAttempt,
    Ending,
    EndPolicy,
    Tally,
    after_attempt,
)
from haflow.core.states import AttemptState, TaskState
from haflow.metastore import models as m
from haflow.metastore.dbclock import db_utcnow
from haflow.metastore.records import (
    AttemptRef,
    ClaimedAttempt,
)
from haflow.metastore.repository._base import (
    _Base,
    _checked,
    _event,
)

_a, _ti = m.TaskAttempt, m.TaskInstance
# The hot path's statements, built once: building a statement's expression costs more CPU than
# the round trip that runs it (about a third of a worker's CPU per attempt, measured).
_CLAIM = (
    update(_a)
    .where(
        _a.ti_id == bindparam("k_ti"),
        _a.attempt == bindparam("k_attempt"),
        _a.epoch == bindparam("k_epoch"),
        _a.state == AttemptState.QUEUED,
    )
    .values(
        state=AttemptState.RUNNING,
        worker_id=bindparam("k_worker"),
        started_at=bindparam("k_now"),
        heartbeat_at=db_utcnow(),
    )
)
_CLAIM_TI = (
    update(_ti)
    .where(_ti.id == bindparam("k_ti"), _ti.attempt == bindparam("k_attempt"))
    .values(state=TaskState.RUNNING, worker_id=bindparam("k_worker"), started_at=bindparam("k_now"))
)
_CLAIMED = (
    select(
        _ti.dag_id,
        _ti.task_id,
        _ti.timeout_s,
        m.DagRun.run_id,
        m.DagRun.conf,
        m.DagRun.data_interval_start,
        m.DagRun.data_interval_end,
        m.Dag.fileloc,
    )
    .join(m.DagRun, m.DagRun.id == _ti.run_pk)
    .join(m.Dag, m.Dag.dag_id == _ti.dag_id)
    .where(_ti.id == bindparam("k_ti"))
)
_MINE = (
    _a.ti_id == bindparam("k_ti"),
    _a.attempt == bindparam("k_attempt"),
    _a.worker_id == bindparam("k_worker"),
    _a.state == AttemptState.RUNNING,
)
_HEARTBEAT = update(_a).where(*_MINE).values(heartbeat_at=db_utcnow())
_END = (
    update(_a)
    .where(*_MINE)
    .values(state=bindparam("k_state"), ended_at=bindparam("k_now"), reason=bindparam("k_reason"))
)
_TALLY = (
    select(
        _ti.dag_id,
        _ti.task_id,
        m.DagRun.run_id,
        _ti.failures,
        _ti.losses,
        _ti.retries,
        _ti.retry_delay_s,
    )
    .join(m.DagRun, m.DagRun.id == _ti.run_pk)
    .where(_ti.id == bindparam("k_ti"))
)
_SETTLE = (
    update(_ti)
    .where(
        _ti.id == bindparam("k_ti"),
        _ti.attempt == bindparam("k_attempt"),
        _ti.state == TaskState.RUNNING,
    )
    .values(
        state=bindparam("k_new"),
        failures=bindparam("k_failures"),
        losses=bindparam("k_losses"),
        next_try_at=bindparam("k_next_try_at"),
        ended_at=bindparam("k_ended_at"),
    )
)
_LOG = insert(m.TaskLog)
_NOTIFY = text("SELECT pg_notify(:c, '')")


class AttemptQueries(_Base):
    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None:
        """Claim a queued attempt for `worker_id`; None when it is not queued at that number
        under the message's epoch (the epoch it was last published under: a stale duplicate
        or a forged message naming another epoch claims nothing)."""
        key = {
            "k_ti": ref.ti_id,
            "k_attempt": ref.attempt,
            "k_epoch": ref.epoch,
            "k_worker": worker_id,
            "k_now": now,
        }
        with self._tx() as conn:
            res = conn.execute(_CLAIM, key)
            if res.rowcount != 1:
                self._emit(
                    conn,
                    [
                        self._ti_event(
                            conn,
                            "attempt.claim_rejected",
                            ref.ti_id,
                            ref.attempt,
                            ref.epoch,
                            now,
                            "",
                            actor=worker_id,
                        )
                    ],
                )
                return None
            conn.execute(_CLAIM_TI, key)
            row = conn.execute(_CLAIMED, key).one()
            self._emit(
                conn,
                [
                    _event(
                        "attempt.claimed",
                        worker_id,
                        now,
                        epoch=ref.epoch,
                        dag_id=row.dag_id,
                        run_id=row.run_id,
                        task_id=row.task_id,
                        attempt=ref.attempt,
                    )
                ],
            )
        return ClaimedAttempt(
            ref.ti_id,
            ref.attempt,
            row.dag_id,
            row.run_id,
            row.task_id,
            row.fileloc,
            row.timeout_s,
            json.loads(row.conf or "{}"),
            row.data_interval_start,
            row.data_interval_end,
        )

    def heartbeat(self, ti_id: int, attempt: int, worker_id: str) -> bool:
        """Renew an attempt's liveness, stamped by the metastore's clock; False means it is no
        longer ours (reclaimed): stop it."""
        with self._tx() as conn:
            key = {"k_ti": ti_id, "k_attempt": attempt, "k_worker": worker_id}
            res = conn.execute(_HEARTBEAT, key)
        return res.rowcount == 1

    def append_log(self, ti_id: int, attempt: int, data: str, now: datetime) -> None:
        if data:
            with self._tx() as conn:
                conn.execute(_LOG, {"ti_id": ti_id, "attempt": attempt, "ts": now, "data": data})

    def finish(
        self,
        ti_id: int,
        attempt: int,
        worker_id: str,
        ending: Ending,
        reason: str,
        now: datetime,
        log: str = "",
        policy: EndPolicy = DEFAULT_POLICY,
    ) -> bool:
        """Report an attempt's end; False (and a `report.rejected` event) for a zombie. What
        the task instance becomes is `core.attempt_end`'s rule under `policy`."""
        state = ending.attempt_state
        key: dict[str, Any] = {
            "k_ti": ti_id,
            "k_attempt": attempt,
            "k_worker": worker_id,
            "k_state": state,
            "k_now": now,
            "k_reason": reason[:2000],
        }
        with self._tx() as conn:
            if log:
                conn.execute(_LOG, {"ti_id": ti_id, "attempt": attempt, "ts": now, "data": log})
            res = conn.execute(_END, key)
            row = conn.execute(_TALLY, key).one()
            where = dict(dag_id=row.dag_id, run_id=row.run_id, task_id=row.task_id, attempt=attempt)
            if res.rowcount != 1:
                detail = {"state": str(state)}
                self._emit(
                    conn, [_event("report.rejected", worker_id, now, **where, detail=detail)]
                )
                return False
            nxt = after_attempt(
                Tally(row.failures, row.losses, row.retries, row.retry_delay_s), ending, policy, now
            )
            counters = {f"k_{name}": value for name, value in _counters(nxt, now).items()}
            _checked(
                conn.execute(_SETTLE, {**key, "k_new": nxt.state, **counters}),
                1,
                "settle task instance",
            )
            detail = {"attempt_state": str(state), "reason": reason[:500], **_note(nxt.note)}
            self._emit(conn, [_event("ti." + nxt.state, worker_id, now, **where, detail=detail)])
            if conn.dialect.name == "postgresql":  # wakes the leader when this commits
                conn.execute(_NOTIFY, {"c": notify_channel(self.cluster)})
        return True


def _counters(nxt: AfterAttempt, now: datetime) -> dict[str, Any]:
    """The task instance's columns that `core.attempt_end`'s verdict sets."""
    return {
        "failures": nxt.failures,
        "losses": nxt.losses,
        "next_try_at": nxt.next_try_at,
        "ended_at": now if nxt.state.finished else None,
    }


def _note(note: str) -> dict[str, str]:
    return {"note": note} if note else {}


def notify_channel(cluster: str) -> str:
    """The PostgreSQL NOTIFY channel on which finished attempts wake the cluster's leader."""
    return f"haflow_finished_{cluster}"[:63]
