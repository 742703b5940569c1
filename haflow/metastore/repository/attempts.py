"""Attempts as workers see them: claim, heartbeat, log, report; all conditional."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update

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
    _mine,
)


class AttemptQueries(_Base):
    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None:
        """Claim a queued attempt for `worker_id`; None when it is not queued at that number
        under the message's epoch (the epoch it was last published under: a stale duplicate
        or a forged message naming another epoch claims nothing)."""
        a, ti = m.TaskAttempt, m.TaskInstance
        with self._tx() as conn:
            res = conn.execute(
                update(a)
                .where(
                    a.ti_id == ref.ti_id,
                    a.attempt == ref.attempt,
                    a.epoch == ref.epoch,
                    a.state == AttemptState.QUEUED,
                )
                .values(
                    state=AttemptState.RUNNING,
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=db_utcnow(),
                )
            )
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
            conn.execute(
                update(ti)
                .where(ti.id == ref.ti_id, ti.attempt == ref.attempt)
                .values(state=TaskState.RUNNING, worker_id=worker_id, started_at=now)
            )
            row = conn.execute(
                select(
                    ti.dag_id,
                    ti.task_id,
                    ti.timeout_s,
                    m.DagRun.run_id,
                    m.DagRun.conf,
                    m.DagRun.data_interval_start,
                    m.DagRun.data_interval_end,
                    m.Dag.fileloc,
                )
                .join(m.DagRun, m.DagRun.id == ti.run_pk)
                .join(m.Dag, m.Dag.dag_id == ti.dag_id)
                .where(ti.id == ref.ti_id)
            ).one()
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
            res = conn.execute(
                update(m.TaskAttempt)
                .where(*_mine(ti_id, attempt, worker_id))
                .values(heartbeat_at=db_utcnow())
            )
        return res.rowcount == 1

    def append_log(self, ti_id: int, attempt: int, data: str, now: datetime) -> None:
        if data:
            with self._tx() as conn:
                conn.execute(
                    insert(m.TaskLog).values(ti_id=ti_id, attempt=attempt, ts=now, data=data)
                )

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
        ti = m.TaskInstance
        with self._tx() as conn:
            if log:
                conn.execute(
                    insert(m.TaskLog).values(ti_id=ti_id, attempt=attempt, ts=now, data=log)
                )
            res = conn.execute(
                update(m.TaskAttempt)
                .where(*_mine(ti_id, attempt, worker_id))
                .values(state=state, ended_at=now, reason=reason[:2000])
            )
            row = conn.execute(
                select(
                    ti.dag_id,
                    ti.task_id,
                    m.DagRun.run_id,
                    ti.failures,
                    ti.losses,
                    ti.retries,
                    ti.retry_delay_s,
                )
                .join(m.DagRun, m.DagRun.id == ti.run_pk)
                .where(ti.id == ti_id)
            ).one()
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
            new, values = nxt.state, _counters(nxt, now)
            _checked(
                conn.execute(
                    update(ti)
                    .where(ti.id == ti_id, ti.attempt == attempt, ti.state == TaskState.RUNNING)
                    .values(state=new, **values)
                ),
                1,
                "settle task instance",
            )
            detail = {"attempt_state": str(state), "reason": reason[:500], **_note(nxt.note)}
            self._emit(conn, [_event("ti." + new, worker_id, now, **where, detail=detail)])
            if conn.dialect.name == "postgresql":  # wakes the leader when this commits
                conn.execute(text("SELECT pg_notify(:c, '')"), {"c": notify_channel(self.cluster)})
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
