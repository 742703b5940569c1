"""Pools: named slots (`haflow.core.pools`); what each holds in flight now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from haflow.core.ids import check_pool_name, check_text
from haflow.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS
from haflow.core.states import IN_FLIGHT_TASK_STATES, TaskState
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import PoolRow
from haflow.metastore.repository._base import _Base, _event

MAX_SLOTS = 1_000_000


def check_pool(name: object, slots: object) -> tuple[str, int]:
    """A pool's name and slots as given, or InvalidRequest naming what is wrong."""
    name = check_pool_name(name)
    if isinstance(slots, bool) or not isinstance(slots, int) or not -1 <= slots <= MAX_SLOTS:
        raise InvalidRequest(
            f"slots must be an int from 0 to {MAX_SLOTS}, or -1 for no cap, got {slots!r}"
        )
    return name, slots


class PoolQueries(_Base):
    def list(self) -> list[PoolRow]:
        """Every pool (the default pool included, with or without a row), with the slots its
        queued and running task instances hold."""
        ti = m.TaskInstance
        with self._tx() as conn:
            rows = {r.name: r for r in conn.execute(select(m.Pool))}
            held = conn.execute(
                select(ti.pool, ti.state, func.sum(ti.pool_slots))
                .where(ti.state.in_(IN_FLIGHT_TASK_STATES))
                .group_by(ti.pool, ti.state)
            ).all()
        use: dict[str, dict[str, int]] = {}
        for pool, state, slots in held:
            use.setdefault(pool, {})[state] = int(slots or 0)
        names = sorted({DEFAULT_POOL, *rows})
        out = []
        for name in names:
            row = rows.get(name)
            slots = row.slots if row is not None else DEFAULT_POOL_SLOTS
            description = row.description if row is not None else "the pool of tasks that name none"
            queued = use.get(name, {}).get(TaskState.QUEUED, 0)
            running = use.get(name, {}).get(TaskState.RUNNING, 0)
            out.append(PoolRow(name, slots, description, queued, running))
        return out

    def get(self, name: str) -> PoolRow:
        for pool in self.list():
            if pool.name == name:
                return pool
        raise NotFound(f"no pool {name!r}")

    def set(self, name: str, slots: int, now: datetime, description: str | None = None) -> PoolRow:
        """Create pool `name` or change its slots (and description, when given). Fewer slots
        than are in use stop no task: nothing more is queued in it until it has room."""
        name, slots = check_pool(name, slots)
        if description is not None:
            description = check_text(description, "description")
        with self._tx() as conn:
            found = conn.execute(select(m.Pool).where(m.Pool.name == name)).first()
            if found is None:
                row = {"name": name, "slots": slots, "description": description or ""}
                conn.execute(insert(m.Pool).values(**row))
            else:
                changed: dict[str, object] = {"slots": slots}
                if description is not None:
                    changed["description"] = description
                conn.execute(update(m.Pool).where(m.Pool.name == name).values(**changed))
            before = None if found is None else found.slots
            detail = {"pool": name, "slots": slots, "before": before}
            self._emit(conn, [_event("pool.set", self.actor, now, detail=detail)])
        return self.get(name)

    def delete(self, name: str, now: datetime) -> None:
        """Delete pool `name`; refused for the default pool and while task instances that
        have not finished use it (they would fail for want of it)."""
        if name == DEFAULT_POOL:
            raise Conflict(f"the default pool {DEFAULT_POOL!r} cannot be deleted (set its slots)")
        ti = m.TaskInstance
        with self._tx() as conn:
            if conn.execute(select(m.Pool.name).where(m.Pool.name == name)).first() is None:
                raise NotFound(f"no pool {name!r}")
            waiting = conn.execute(
                select(func.count())
                .select_from(ti)
                .join(m.DagRun, m.DagRun.id == ti.run_pk)
                .where(ti.pool == name, m.DagRun.state.in_(["queued", "running"]))
                .where(ti.state.not_in(["success", "failed", "upstream_failed", "skipped"]))
            ).scalar_one()
            if waiting:
                raise Conflict(
                    f"pool {name!r} is used by {waiting} task instance(s) of unfinished runs; "
                    "let them finish first"
                )
            conn.execute(delete(m.Pool).where(m.Pool.name == name))
            self._emit(conn, [_event("pool.deleted", self.actor, now, detail={"pool": name})])
