"""A finished attempt wakes the leader through PostgreSQL NOTIFY, in the report's transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.engine import Engine

from haflow.core.attempt_end import Ending
from haflow.metastore.notify import make_wakeup
from haflow.metastore.repository import Repository
from tests.integration.test_repository import T0, _dag, _queue, _started_run


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's; other databases poll")


def test_report_wakes_the_listener(pg_only: None, engine: Engine, db_url: str) -> None:
    repo = Repository(engine, cluster="c1", actor="s")
    repo.dags.sync([_dag()], [], T0)
    epoch = repo.leadership.take("s", "none", T0)
    _started_run(repo, epoch)
    ref = _queue(repo, epoch)
    wake = threading.Event()
    listener = make_wakeup(db_url, "c1", wake)
    assert listener is not None
    listener.start()
    try:
        other = make_wakeup(db_url, "another-cluster", threading.Event())
        assert other is not None and other.channel != listener.channel
        repo.attempts.claim(ref, "w1", T0)
        assert not wake.wait(1.5), "a claim must not wake the leader"
        repo.attempts.finish(ref.ti_id, 1, "w1", Ending.SUCCESS, "", T0)
        assert wake.wait(5.0), "the report did not wake the leader"
    finally:
        listener.stop()


def test_other_databases_have_no_listener(backend: str, db_url: str) -> None:
    if backend == "postgresql":
        pytest.skip("PostgreSQL has one")
    assert make_wakeup(db_url, "c1", threading.Event()) is None
