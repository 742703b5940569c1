"""The notification outbox: rows written by `_base._outbox` with the events they follow,
claimed by the leader under its epoch, settled conditionally on that claim.

States: `pending` (due at `due_at`), `sending` (claimed; `due_at` is the end of the claim's
lease), `delivered`, `failed` (its tries spent). A claim is a fenced write, so only the leader
delivers; a row claimed under an older epoch is claimed again at once (its leader is gone,
or deposed and about to find out), one whose lease ran out under this epoch too. A delivery
outcome counts only for the claim it belongs to (same epoch, same try): a deposed leader's
late outcome changes nothing, and the row is delivered again under the same key.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from haflow.core.notices import host_of
from haflow.metastore import models as m
from haflow.metastore.records import NotificationRow
from haflow.metastore.repository._base import _Base, _event

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
STATES = (PENDING, SENDING, DELIVERED, FAILED)

_N = m.Notification
MAX_RETRY_DELAY_S = 3600.0  # the doubling stops at an hour between tries


def _due(epoch: int, now: datetime) -> Any:
    return or_(
        and_(_N.state == PENDING, _N.due_at <= now),
        and_(_N.state == SENDING, or_(_N.claim_epoch != epoch, _N.due_at <= now)),
    )


class NotificationQueries(_Base):
    def claim(
        self, epoch: int, now: datetime, *, limit: int, lease_s: float
    ) -> list[NotificationRow]:
        """Claim up to `limit` due notifications under `epoch` (oldest first), each for
        `lease_s`; FencedOut when `epoch` no longer leads. Looks first without writing, so an
        idle leader's polling costs no write."""
        due = _due(epoch, now)
        with self._tx() as conn:
            ids = list(
                conn.execute(select(_N.id).where(due).order_by(_N.id).limit(limit)).scalars()
            )
        if not ids:
            return []
        lease_end = now + timedelta(seconds=lease_s)
        claimed = []
        with self._tx(epoch, now) as conn:
            rows = conn.execute(
                select(_N).where(_N.id.in_(ids), due).order_by(_N.id).with_for_update()
            ).all()
            for r in rows:
                conn.execute(
                    update(_N)
                    .where(_N.id == r.id, _N.tries == r.tries)
                    .values(state=SENDING, claim_epoch=epoch, tries=r.tries + 1, due_at=lease_end)
                )
                claimed.append(_row(r, state=SENDING, tries=r.tries + 1, claim_epoch=epoch))
        return claimed

    def settle(
        self,
        n: NotificationRow,
        error: str | None,
        now: datetime,
        *,
        max_tries: int,
        retry_delay_s: float,
    ) -> str | None:
        """Record how the delivery of claim `n` ended (`error` None: delivered). Returns the
        row's new state, or None when the claim was no longer the row's (a newer leader took
        it; that delivery decides). A failed try is retried after `retry_delay_s`, doubled at
        every try (at most an hour), until `max_tries` tries were made."""
        if error is None:
            state, due, what = DELIVERED, now, "notification.delivered"
        elif n.tries >= max_tries:
            state, due, what = FAILED, now, "notification.failed"
        else:
            delay = min(retry_delay_s * 2 ** min(n.tries - 1, 30), MAX_RETRY_DELAY_S)
            state, due, what = PENDING, now + timedelta(seconds=delay), "notification.error"
        ended = now if state in (DELIVERED, FAILED) else None
        with self._tx() as conn:
            res = conn.execute(
                update(_N)
                .where(
                    _N.id == n.id,
                    _N.state == SENDING,
                    _N.claim_epoch == n.claim_epoch,
                    _N.tries == n.tries,
                )
                .values(state=state, due_at=due, ended_at=ended, error=error or "")
            )
            if res.rowcount != 1:
                return None
            detail = {
                "key": n.key,
                "event": n.event,
                "target": _describe(n.target),
                "try": n.tries,
                **({"error": error} if error else {}),
                **({"next_try_at": due.isoformat()} if state == PENDING else {}),
            }
            self._emit(
                conn,
                [
                    _event(
                        what,
                        self.actor,
                        now,
                        epoch=n.claim_epoch,
                        dag_id=n.dag_id,
                        run_id=n.run_id,
                        task_id=n.task_id,
                        attempt=n.attempt,
                        detail=detail,
                    )
                ],
            )
        return state

    def recent(self, *, dag_id: str | None = None, limit: int = 100) -> list[NotificationRow]:
        """The newest notifications, newest first."""
        stmt = select(_N).order_by(_N.id.desc()).limit(limit)
        if dag_id is not None:
            stmt = stmt.where(_N.dag_id == dag_id)
        with self._tx() as conn:
            return [_row(r) for r in conn.execute(stmt).all()]

    def counts(self) -> dict[str, int]:
        """How many notifications are in each state."""
        with self._tx() as conn:
            rows = conn.execute(select(_N.state, func.count()).group_by(_N.state)).all()
        return {s: 0 for s in STATES} | {state: n for state, n in rows}


def _describe(target: dict[str, Any]) -> str:
    if target["type"] == "webhook":  # its host only: a webhook's path often holds a token
        return f"webhook to {host_of(target['url'])}"
    if target["type"] == "email":
        return "email to " + ", ".join(target["to"])
    owner = f"task {target['task']}" if target["task"] else "DAG"
    return f"{owner} {target['hook']}[{target['index']}] ({target['name']})"


def _row(r: Any, **changed: Any) -> NotificationRow:
    values = dict(
        id=r.id,
        key=r.key,
        event=r.event,
        dag_id=r.dag_id,
        run_id=r.run_id,
        task_id=r.task_id,
        attempt=r.attempt,
        target=json.loads(r.target),
        payload=json.loads(r.payload),
        state=r.state,
        tries=r.tries,
        claim_epoch=r.claim_epoch,
        error=r.error,
        created_at=r.created_at,
        ended_at=r.ended_at,
    )
    return NotificationRow(**(values | changed))
