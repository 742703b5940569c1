"""Attempts as workers see them: claim, heartbeat, log, report; all conditional."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, tuple_, update

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
from haflow.metastore.records import AttemptRef, AttemptReport, ClaimedAttempt
from haflow.metastore.repository._base import Event, _Base, _checked, _event

_a, _ti = m.TaskAttempt, m.TaskInstance
Key = tuple[int, int]  # (task instance, attempt)
# The hot path's statements, built once: building a statement's expression costs more CPU than
# the round trip that runs it (about a third of a worker's CPU per attempt, measured). Each
# takes a whole batch of attempts: a worker process's threads share its transactions
# (`haflow.worker.batch`), so one statement claims, heartbeats or ends many attempts.
_KEYS = tuple_(_a.ti_id, _a.attempt).in_(bindparam("k_keys", expanding=True))
_CLAIMABLE = tuple_(_a.ti_id, _a.attempt, _a.epoch).in_(bindparam("k_refs", expanding=True))
_CLAIM = (
    update(_a)
    .where(_CLAIMABLE, _a.state == AttemptState.QUEUED)
    .values(
        state=AttemptState.RUNNING,
        worker_id=bindparam("k_worker"),
        started_at=bindparam("k_now"),
        heartbeat_at=db_utcnow(),
    )
)
_CLAIM_RETURNING = _CLAIM.returning(_a.ti_id, _a.attempt, _a.epoch)
# where UPDATE ... RETURNING is missing (MariaDB): lock the claimable rows, then claim those
_LOCK_CLAIMABLE = (
    select(_a.ti_id, _a.attempt, _a.epoch)
    .where(_CLAIMABLE, _a.state == AttemptState.QUEUED)
    .with_for_update()
)
_CLAIM_TI = (
    update(_ti)
    .where(tuple_(_ti.id, _ti.attempt).in_(bindparam("k_keys", expanding=True)))
    .values(state=TaskState.RUNNING, worker_id=bindparam("k_worker"), started_at=bindparam("k_now"))
)
_CLAIMED = (
    select(
        _ti.id,
        _ti.run_pk,
        _ti.dag_id,
        _ti.task_id,
        _ti.timeout_s,
        _ti.sensing_since,
        m.DagRun.run_id,
        m.DagRun.conf,
        m.DagRun.data_interval_start,
        m.DagRun.data_interval_end,
        m.DagRun.code_hash,
        m.Dag.fileloc,
    )
    .join(m.DagRun, m.DagRun.id == _ti.run_pk)
    .join(m.Dag, m.Dag.dag_id == _ti.dag_id)
    .where(_ti.id.in_(bindparam("k_ids", expanding=True)))
)
_r = m.TaskResult
# the results of runs' tasks, each the one its task instance succeeded with: an attempt that
# was reclaimed or lost never wrote one, and a task cleared since has another attempt now
_RESULTS = (
    select(_r.run_pk, _r.task_id, _r.value)
    .join(_ti, (_ti.id == _r.ti_id) & (_ti.attempt == _r.attempt))
    .where(_r.run_pk.in_(bindparam("k_runs", expanding=True)), _ti.state == TaskState.SUCCESS)
)
_MINE = (
    _a.ti_id == bindparam("k_ti"),
    _a.attempt == bindparam("k_attempt"),
    _a.worker_id == bindparam("k_worker"),
    _a.state == AttemptState.RUNNING,
)
_ALL_MINE = (_KEYS, _a.worker_id == bindparam("k_worker"), _a.state == AttemptState.RUNNING)
_HEARTBEAT = update(_a).where(*_ALL_MINE).values(heartbeat_at=db_utcnow())
_STILL_MINE = select(_a.ti_id, _a.attempt).where(*_ALL_MINE)
_LOCK_MINE = select(_a.ti_id, _a.attempt).where(*_ALL_MINE).with_for_update()
# attempts this worker already ended: a report sent again because the answer to the first was
# lost (its connection cut after the commit, as in a metastore failover) finds its own end here
_ENDED_MINE = select(_a.ti_id, _a.attempt, _a.state).where(
    _KEYS, _a.worker_id == bindparam("k_worker"), _a.state != AttemptState.RUNNING
)
_END = (
    update(_a)
    .where(*_MINE)
    .values(state=bindparam("k_state"), ended_at=bindparam("k_now"), reason=bindparam("k_reason"))
)
_TALLY = (
    select(
        _ti.id,
        _ti.run_pk,
        _ti.dag_id,
        _ti.task_id,
        m.DagRun.run_id,
        _ti.failures,
        _ti.losses,
        _ti.retries,
        _ti.retry_delay_s,
        _ti.retry_backoff_cap_s,
    )
    .join(m.DagRun, m.DagRun.id == _ti.run_pk)
    .where(_ti.id.in_(bindparam("k_ids", expanding=True)))
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
        sensing_since=bindparam("k_sensing_since"),
    )
)
_LOG = insert(m.TaskLog)
_RESULT = insert(_r)
_NOTIFY = text("SELECT pg_notify(:c, '')")


class AttemptQueries(_Base):
    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None:
        """Claim one queued attempt: `claim_many` of one."""
        return self.claim_many([ref], worker_id, now)[0]

    def claim_many(
        self, refs: Sequence[AttemptRef], worker_id: str, now: datetime
    ) -> list[ClaimedAttempt | None]:
        """Claim queued attempts for `worker_id`, in one transaction; for each ref, what to
        run, or None when it is not queued at that number under the message's epoch (the
        epoch it was last published under: a stale duplicate, a second copy in the same
        batch, or a forged message naming another epoch claims nothing)."""
        asked = list(dict.fromkeys((r.ti_id, r.attempt, r.epoch) for r in refs))
        key = {"k_refs": asked, "k_worker": worker_id, "k_now": now}
        with self._tx() as conn:
            won = self._claim_rows(conn, key)
            rows = {}
            if won:
                conn.execute(_CLAIM_TI, {**key, "k_keys": sorted(k[:2] for k in won)})
                ids = sorted({k[0] for k in won})
                rows = {r.id: r for r in conn.execute(_CLAIMED, {"k_ids": ids})}
            results = _run_results(conn, {r.run_pk for r in rows.values()})
            out: list[ClaimedAttempt | None] = []
            events = []
            for ref in refs:
                asked_for = (ref.ti_id, ref.attempt, ref.epoch)
                row = rows.get(ref.ti_id) if asked_for in won else None
                won.discard(asked_for)  # a second copy of it claims nothing
                out.append(None if row is None else _claimed(ref, row, results[row.run_pk]))
                events.append(self._claim_event(conn, ref, row, worker_id, now))
            self._emit(conn, events)
        return out

    def _claim_rows(self, conn: Connection, key: dict[str, Any]) -> set[tuple[int, int, int]]:
        """The (task instance, attempt, epoch) this claim won: updated and returned, or
        locked first and updated."""
        if not key["k_refs"]:
            return set()
        if conn.dialect.update_returning:
            return {(r.ti_id, r.attempt, r.epoch) for r in conn.execute(_CLAIM_RETURNING, key)}
        locked = [(r.ti_id, r.attempt, r.epoch) for r in conn.execute(_LOCK_CLAIMABLE, key)]
        if locked:
            _checked(conn.execute(_CLAIM, {**key, "k_refs": locked}), len(locked), "claim")
        return set(locked)

    def _claim_event(
        self, conn: Connection, ref: AttemptRef, row: Any, worker_id: str, now: datetime
    ) -> Event:
        if row is None:
            return self._ti_event(
                conn,
                "attempt.claim_rejected",
                ref.ti_id,
                ref.attempt,
                ref.epoch,
                now,
                "",
                actor=worker_id,
            )
        return _event(
            "attempt.claimed",
            worker_id,
            now,
            epoch=ref.epoch,
            dag_id=row.dag_id,
            run_id=row.run_id,
            task_id=row.task_id,
            attempt=ref.attempt,
        )

    def heartbeat(
        self, ti_id: int, attempt: int, worker_id: str, log: str = "", now: datetime | None = None
    ) -> bool:
        """Renew one attempt's liveness (`beat` of one); False means it is no longer ours
        (reclaimed): stop it."""
        logs = [(ti_id, attempt, log, now)] if log and now else []
        return (ti_id, attempt) in self.beat([(ti_id, attempt)], worker_id, logs)

    def beat(
        self,
        keys: Sequence[Key],
        worker_id: str,
        logs: Sequence[tuple[int, int, str, datetime | None]] = (),
    ) -> set[Key]:
        """Renew the liveness of `worker_id`'s attempts `keys`, stamped by the metastore's
        clock, and append their new log output, in one transaction; the attempts still ours.
        One that is not was reclaimed: stop it."""
        unique = sorted(set(keys))
        key = {"k_keys": unique, "k_worker": worker_id}
        with self._tx() as conn:
            mine: set[Key] = set()
            if unique and conn.execute(_HEARTBEAT, key).rowcount == len(unique):
                mine = set(unique)
            elif unique:
                mine = {(r.ti_id, r.attempt) for r in conn.execute(_STILL_MINE, key)}
            # after the attempts' rows are locked: an attempt's chunks get ids in commit order
            self._append(conn, logs)
            return mine

    def append_log(self, ti_id: int, attempt: int, data: str, now: datetime) -> None:
        with self._tx() as conn:
            self._append(conn, [(ti_id, attempt, data, now)])

    @staticmethod
    def _append(conn: Connection, logs: Sequence[tuple[int, int, str, datetime | None]]) -> None:
        rows = [
            {"ti_id": ti_id, "attempt": attempt, "ts": now, "data": data}
            for ti_id, attempt, data, now in logs
            if data
        ]
        if rows:
            conn.execute(_LOG, rows)

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
        result: str | None = None,
        poke_at: datetime | None = None,
        sensing_since: datetime | None = None,
    ) -> bool:
        """Report one attempt's end: `finish_many` of one."""
        report = AttemptReport(
            ti_id, attempt, ending, reason, now, log, result, poke_at, sensing_since
        )
        return self.finish_many([report], worker_id, policy)[0]

    def finish_many(
        self,
        reports: Sequence[AttemptReport],
        worker_id: str,
        policy: EndPolicy = DEFAULT_POLICY,
    ) -> list[bool]:
        """Report attempts' ends in one transaction; for each, False (and a `report.rejected`
        event) for a zombie's: an attempt that is not running under `worker_id`. What each
        task instance becomes is `core.attempt_end`'s rule under `policy`. A successful
        attempt's result is kept with its accepted report, and only then."""
        keys = sorted({(r.ti_id, r.attempt) for r in reports})
        with self._tx() as conn:
            key = {"k_keys": keys, "k_worker": worker_id}
            mine = {(r.ti_id, r.attempt) for r in conn.execute(_LOCK_MINE, key)} if keys else set()
            landed = _landed(conn, reports, mine, key)
            # the last output after the lock (as a heartbeat's): chunk ids follow commit order
            self._append(
                conn,
                [
                    (r.ti_id, r.attempt, r.log, r.now)
                    for r in reports
                    if (r.ti_id, r.attempt) not in landed
                ],
            )
            ids = sorted({ti for ti, _ in keys})
            tally = {r.id: r for r in conn.execute(_TALLY, {"k_ids": ids})} if ids else {}
            ends, settles, results, events, out = [], [], [], [], []
            for r in reports:
                if (r.ti_id, r.attempt) in landed:  # it committed before: accepted, nothing to do
                    out.append(True)
                    continue
                ok = (r.ti_id, r.attempt) in mine
                mine.discard((r.ti_id, r.attempt))  # a second report of it is a zombie's
                row = tally.get(r.ti_id)
                if ok and row is not None:
                    ends.append(_end_row(r, worker_id))
                    settle, event = _settled(r, row, worker_id, policy)
                    settles.append(settle)
                    events.append(event)
                    if r.ending is Ending.SUCCESS and r.result is not None:
                        results.append(_result_row(r, row))
                else:
                    events.append(_rejected(r, row, worker_id))
                out.append(ok and row is not None)
            if ends:
                _checked(conn.execute(_END, ends), len(ends), "end attempts")
                _checked(conn.execute(_SETTLE, settles), len(settles), "settle task instances")
            if results:
                conn.execute(_RESULT, results)
            self._emit(conn, events)
            if ends and conn.dialect.name == "postgresql":  # wakes the leader when this commits
                conn.execute(_NOTIFY, {"c": notify_channel(self.cluster)})
        return out


def _landed(
    conn: Connection,
    reports: Sequence[AttemptReport],
    mine: set[tuple[int, int]],
    key: dict[str, Any],
) -> set[tuple[int, int]]:
    """The attempts (no longer running under us) this worker already ended the way its report
    says: a report made again after the answer to its first commit was lost."""
    others = [r for r in reports if (r.ti_id, r.attempt) not in mine]
    if not others:
        return set()
    ended = {(r.ti_id, r.attempt): r.state for r in conn.execute(_ENDED_MINE, key)}
    return {
        (r.ti_id, r.attempt)
        for r in others
        if ended.get((r.ti_id, r.attempt)) == r.ending.attempt_state
    }


def _run_results(conn: Connection, runs: set[int]) -> dict[int, dict[str, str]]:
    """For each run of `runs`: its tasks' results (task id -> JSON text)."""
    out: dict[int, dict[str, str]] = {pk: {} for pk in runs}
    if runs:
        for r in conn.execute(_RESULTS, {"k_runs": sorted(runs)}):
            out[r.run_pk][r.task_id] = r.value
    return out


def _result_row(r: AttemptReport, row: Any) -> dict[str, Any]:
    return {
        "ti_id": r.ti_id,
        "attempt": r.attempt,
        "run_pk": row.run_pk,
        "task_id": row.task_id,
        "value": r.result,
        "created_at": r.now,
    }


def _claimed(ref: AttemptRef, row: Any, results: dict[str, str]) -> ClaimedAttempt:
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
        results,
        row.sensing_since,
        row.code_hash,
    )


def _end_row(r: AttemptReport, worker_id: str) -> dict[str, Any]:
    return {
        "k_ti": r.ti_id,
        "k_attempt": r.attempt,
        "k_worker": worker_id,
        "k_state": r.ending.attempt_state,
        "k_now": r.now,
        "k_reason": r.reason[:2000],
    }


def _settled(
    r: AttemptReport, row: Any, worker_id: str, policy: EndPolicy
) -> tuple[dict[str, Any], Event]:
    """The task instance's new columns after report `r`, and the event saying so."""
    tally = Tally(row.failures, row.losses, row.retries, row.retry_delay_s, row.retry_backoff_cap_s)
    nxt = after_attempt(tally, r.ending, policy, r.now, r.poke_at)
    counters = {f"k_{name}": value for name, value in _counters(nxt, r.now).items()}
    since = r.sensing_since if r.ending is Ending.RESCHEDULED else None
    settle = {
        "k_ti": r.ti_id,
        "k_attempt": r.attempt,
        "k_new": nxt.state,
        "k_sensing_since": since,
        **counters,
    }
    detail = {
        "attempt_state": str(r.ending.attempt_state),
        "reason": r.reason[:500],
        **_note(nxt.note),
    }
    where = _where(r, row)
    return settle, _event("ti." + nxt.state, worker_id, r.now, **where, detail=detail)


def _rejected(r: AttemptReport, row: Any, worker_id: str) -> Event:
    detail = {"state": str(r.ending.attempt_state)}
    return _event("report.rejected", worker_id, r.now, **_where(r, row), detail=detail)


def _where(r: AttemptReport, row: Any) -> dict[str, Any]:
    names = (row.dag_id, row.run_id, row.task_id) if row is not None else (None, None, None)
    return dict(zip(("dag_id", "run_id", "task_id"), names, strict=True), attempt=r.attempt)


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
