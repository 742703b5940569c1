"""Every SQL statement of the chaos harness, in one place: its evidence and its barriers read
from and act on the chaos cluster's PostgreSQL directly (the server's own views and commit
timestamps), never through haflow's repository, which they judge.

- `fenced_transaction`, `activity`: PostgreSQL's `pg_stat_activity` and `pg_locks`, polled on
  an autocommit connection (`watch_connection`) while faults happen.
- `commit_times`: each event row's commit time (`track_commit_timestamp=on` on the cluster).
- `lock_run`: the barrier of `Drill.pause_mid_transaction` (a run row held `FOR UPDATE`).
- `server_ready`, `ensure_database`: bringing the cluster's metastore up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from haflow.metastore import models as m

OPEN_FENCED_TX = text(
    """
    SELECT a.pid, a.state, a.xact_start, a.application_name, a.wait_event_type, a.wait_event,
           left(a.query, 160) AS query,
           extract(epoch FROM clock_timestamp() - a.xact_start) AS age_s
    FROM pg_stat_activity a
    JOIN pg_locks l ON l.pid = a.pid
    WHERE a.client_addr = CAST(:addr AS inet)
      AND a.xact_start IS NOT NULL
      AND l.locktype = 'relation'
      AND l.relation = CAST('leader' AS regclass)
      AND l.mode = 'RowExclusiveLock'
      AND l.granted
    ORDER BY a.xact_start
    LIMIT 1
    """
)


def fenced_transaction(conn: Any, address: str) -> dict[str, Any] | None:
    """The open transaction of the node at `address` that holds the `leader` row, if any:
    backend pid, state, xact_start (ISO), age in seconds. `conn` is an autocommit connection,
    so each call sees a fresh snapshot of the server's activity."""
    row = conn.execute(OPEN_FENCED_TX, {"addr": address}).mappings().first()
    if row is None:
        return None
    return {
        "backend_pid": int(row["pid"]),
        "state": str(row["state"]),
        "xact_start": row["xact_start"].isoformat(),
        "xact_age_s": round(float(row["age_s"]), 4),
        "wait": f"{row['wait_event_type'] or ''}:{row['wait_event'] or ''}",
        "query": str(row["query"]),
    }


ACTIVITY = text(
    """
    SELECT host(a.client_addr) AS addr, a.pid, a.application_name, a.state, a.wait_event_type,
           a.wait_event, a.xact_start, extract(epoch FROM clock_timestamp() - a.xact_start)
           AS xact_age_s, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) AS query
    FROM pg_stat_activity a
    WHERE a.client_addr = ANY(CAST(:addrs AS inet[]))
      AND (a.xact_start IS NOT NULL OR a.state <> 'idle')
    ORDER BY a.xact_start NULLS LAST
    """
)


def activity(conn: Any, addresses: list[str]) -> list[dict[str, Any]]:
    """The server's view of the backends of `addresses` that are busy or inside a transaction:
    state, what they wait on (a lock, the client), how long their transaction has been open."""
    rows = conn.execute(ACTIVITY, {"addrs": addresses}).mappings().all()
    return [
        {
            "addr": str(r["addr"]),
            "backend_pid": int(r["pid"]),
            "application": str(r["application_name"]),
            "state": str(r["state"]),
            "wait": f"{r['wait_event_type'] or ''}:{r['wait_event'] or ''}",
            "xact_age_s": None if r["xact_age_s"] is None else round(float(r["xact_age_s"]), 3),
            "query": str(r["query"]),
        }
        for r in rows
    ]


def watch_connection(engine: Engine) -> Any:
    """An autocommit connection for polling the server's activity views."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


COMMIT_TIMES = text(
    "SELECT id, pg_xact_commit_timestamp(xmin) AS committed FROM event_log WHERE id > :since"
)


def commit_times(engine: Engine) -> dict[int, datetime]:
    """The server's commit time of each event row; empty when the server records none."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(COMMIT_TIMES, {"since": 0}).all()
    except SQLAlchemyError:
        return {}
    return {int(r.id): r.committed for r in rows if r.committed is not None}


LOCK_RUN = text("SELECT id FROM dag_run WHERE id = :pk FOR UPDATE")


def lock_run(conn: Connection, run_pk: int) -> None:
    """Hold run `run_pk`'s row in `conn`'s transaction until it ends: whoever writes the row
    meanwhile (the leader starting the run) waits, inside its fenced transaction."""
    conn.execute(LOCK_RUN, {"pk": run_pk})


def server_ready(admin_url: str) -> bool:
    """Whether the PostgreSQL server at `admin_url` accepts connections."""
    admin = create_engine(admin_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        admin.dispose()


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server at `admin_url` unless it exists."""
    admin = create_engine(admin_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}
            ).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


def acknowledged(engine: Engine, since: datetime | None = None) -> dict[str, Any]:
    """What the metastore has committed, read from it now: event ids (as [first, last]
    ranges), runs ([dag_id, run_id]) and attempts ([dag_id, run_id, task_id, attempt]); on a
    deployment with a past, only what was written from `since` on (what its drill judges)."""
    events = select(m.Event.id).order_by(m.Event.id)
    runs = select(m.DagRun.dag_id, m.DagRun.run_id)
    attempts = (
        select(m.DagRun.dag_id, m.DagRun.run_id, m.TaskInstance.task_id, m.TaskAttempt.attempt)
        .join(m.TaskInstance, m.TaskInstance.id == m.TaskAttempt.ti_id)
        .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
    )
    if since is not None:
        events = events.where(m.Event.ts >= since)
        runs = runs.where(m.DagRun.created_at >= since)
        attempts = attempts.where(m.DagRun.created_at >= since)
    with engine.connect() as conn:
        return {
            "events": id_ranges([int(i) for i in conn.scalars(events)]),
            "runs": [[str(d), str(r)] for d, r in conn.execute(runs)],
            "attempts": [[str(d), str(r), str(t), int(a)] for d, r, t, a in conn.execute(attempts)],
        }


def id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """Sorted ids as [first, last] runs of consecutive ids."""
    out: list[list[int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out
