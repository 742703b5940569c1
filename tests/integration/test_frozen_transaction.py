"""A leader frozen inside a fenced transaction does not block the next leader's takeover.

Found by the chaos harness (leader paused mid-transaction): the frozen leader's transaction held
the `leader` row lock and the standby's `leadership.take` waited on it for as long as the pause
lasted. The scheduler's engine now asks the server to end a session idle inside a transaction
after `[election] db_lock_timeout`; its writes roll back, so fencing is untouched.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine, Transaction

from haflow.errors import HaflowError
from haflow.metastore import models as m
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT_S = 1.0


def _freeze_leader(engine: Engine) -> tuple[int, Connection, Transaction]:
    """Lead on `engine`, then stop inside a scheduling transaction right after its fencing
    check locked the leader row (what a SIGSTOP or a partition does to a leader)."""
    old = Repository(engine, cluster="c").leadership.take("old", "database", T0)
    conn = engine.connect()
    tx = conn.begin()
    conn.execute(
        update(m.Leader).where(m.Leader.cluster == "c", m.Leader.epoch == old).values(renewed_at=T0)
    )
    return old, conn, tx


@SERVERS
def test_a_frozen_leaders_transaction_is_ended_and_a_standby_takes_over(
    engine: Engine, db_url: str
) -> None:
    frozen_engine = create_engine(db_url, idle_tx_timeout_s=LIMIT_S)
    standby = Repository(create_engine(db_url, idle_tx_timeout_s=LIMIT_S), cluster="c")
    old, conn, tx = _freeze_leader(frozen_engine)
    took: list[float] = []
    started = time.monotonic()
    t = threading.Thread(
        target=lambda: took.append(
            (standby.leadership.take("new", "database", T0), time.monotonic() - started)[1]
        )
    )
    t.start()
    t.join(LIMIT_S + 10)
    assert took, "the standby's leadership.take is still blocked by the frozen transaction"
    assert took[0] < LIMIT_S + 5, took
    assert standby.leadership.current().holder == "new"  # type: ignore[union-attr]
    assert standby.leadership.current().epoch == old + 1  # type: ignore[union-attr]
    # the frozen leader wakes up: its transaction is gone, nothing it wrote survives
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for a killed session
        conn.execute(update(m.Leader).where(m.Leader.cluster == "c").values(holder="old"))
        tx.commit()
    conn.close()
    assert standby.leadership.current().holder == "new"  # type: ignore[union-attr]
    frozen_engine.dispose()
    standby.engine.dispose()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_without_the_limit_the_standby_would_wait(engine: Engine, db_url: str) -> None:
    """The control on MySQL: the same freeze on an engine without the limit blocks the
    takeover (PostgreSQL's next leader ends the session itself: the test below)."""
    plain = create_engine(db_url)
    standby = Repository(create_engine(db_url), cluster="c")
    _, conn, tx = _freeze_leader(plain)
    done = threading.Event()

    def take() -> None:
        with contextlib.suppress(HaflowError):
            standby.leadership.take("new", "database", T0)
        done.set()

    threading.Thread(target=take, daemon=True).start()
    assert not done.wait(LIMIT_S + 3), "took over although the frozen transaction held the lock"
    tx.rollback()  # the freeze ends
    assert done.wait(10)
    conn.close()
    plain.dispose()
    standby.engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_session_no_timeout_ends_is_ended_by_the_next_leader(engine: Engine, db_url: str) -> None:
    """A freeze inside a pipelined statement leaves the session `active`, where no idle
    timeout applies; the next leader, holding the election lock, ends the sessions that keep
    the leader row locked, within LOCK_WAIT_S of trying."""
    from haflow.metastore.repository.leadership import LOCK_WAIT_S

    plain = create_engine(db_url)  # no idle limit at all: only the eviction can help
    standby = Repository(create_engine(db_url), cluster="c")
    old, conn, tx = _freeze_leader(plain)
    started = time.monotonic()
    assert standby.leadership.take("new", "database", T0) == old + 1
    assert time.monotonic() - started < LOCK_WAIT_S + 3
    (ended,) = standby.history.events(kinds=["leader.sessions_ended"])
    assert ended.actor == "new" and '"pids": [' in ended.detail
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for an ended session
        conn.execute(update(m.Leader).where(m.Leader.cluster == "c").values(holder="old"))
        tx.commit()
    conn.close()
    assert standby.leadership.current().holder == "new"  # type: ignore[union-attr]
    plain.dispose()
    standby.engine.dispose()
