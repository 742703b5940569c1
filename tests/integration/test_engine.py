"""The metastore engine's pool against real servers: a pooled connection that sat idle is
tested on checkout and replaced when its server session is gone; one in steady use is kept."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from haflow.metastore.engine import PING_AFTER_IDLE_S, create_engine

_OWN_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
_KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mysql": "KILL {}"}


def _session_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(_OWN_ID[engine.dialect.name])).scalar_one())


def _kill(db_url: str, session: int, dialect: str) -> None:
    admin = create_engine(db_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(_KILL[dialect].format(int(session))))
    finally:
        admin.dispose()


def test_an_idle_pooled_connection_whose_session_died_is_replaced(
    engine: Engine, db_url: str, backend: str
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps no pool of server sessions")
    session = _session_id(engine)
    _kill(db_url, session, engine.dialect.name)
    time.sleep(PING_AFTER_IDLE_S + 0.3)
    assert _session_id(engine) != session  # no error: the dead one was tested and replaced


def test_a_connection_in_steady_use_is_kept(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps no pool of server sessions")
    sessions = {_session_id(engine) for _ in range(20)}
    assert len(sessions) == 1
