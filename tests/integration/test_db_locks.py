"""The database leader locks against real servers: exclusion, release, and the server freeing a
lock whose holder closed, was killed or fell silent."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from haflow.metastore.engine import create_engine
from haflow.metastore.repository.locks import LeaderLock, advisory_key, lock_name, make_lock
from tests.integration.conftest import MYSQL_ADMIN, PG_ADMIN, _drop_server_db, _server_db
from tests.waiting import wait_for

MakeLock = Callable[..., LeaderLock]


class WallClock:
    """The wall clock of SQLite leases, moved by hand; server locks ignore it."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def cluster() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make(db_url: str, cluster: str, clock: WallClock) -> Iterator[MakeLock]:
    made: list[LeaderLock] = []

    def _make(holder: str, *, cluster: str = cluster, timeout_s: float = 4.0) -> LeaderLock:
        lock = make_lock(db_url, cluster, holder, timeout_s, clock=clock)
        made.append(lock)
        return lock

    yield _make
    for lock in made:
        lock.close()


def kill_holder_session(db_url: str, backend: str, cluster: str) -> None:
    admin = create_engine(db_url)
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                key = advisory_key(cluster)
                pid = conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND CAST(classid AS bigint) = :hi AND CAST(objid AS bigint) = :lo"
                    ),
                    {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
                ).scalar_one()
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            else:
                cid = conn.execute(
                    text("SELECT IS_USED_LOCK(:n)"),
                    {"n": lock_name(cluster, make_url(db_url).database or "")},
                ).scalar_one()
                conn.execute(text(f"KILL {int(cid)}"))
    finally:
        admin.dispose()


def test_two_locks_for_one_cluster_exclude_each_other(make: MakeLock) -> None:
    a, b = make("a"), make("b")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert a.verify()
    assert not b.verify()
    assert a.try_acquire(), "taking a held lock again reports it held"
    a.release()  # once: the lock was never stacked
    assert not a.verify()
    assert b.try_acquire()
    assert not a.try_acquire()


def test_locks_of_different_clusters_do_not_interfere(make: MakeLock) -> None:
    a, b = make("a", cluster="one-" + uuid.uuid4().hex[:6]), make("b")
    assert a.try_acquire()
    assert b.try_acquire()
    assert a.verify() and b.verify()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_one_cluster_name_in_two_metastores_of_one_server_is_two_locks(
    backend: str, db_url: str, cluster: str, clock: WallClock
) -> None:
    """MariaDB's named locks are the whole server's: the name carries the database, so a
    deployment beside another on the same server never waits on the other's leader."""
    admin = PG_ADMIN if backend == "postgresql" else MYSQL_ADMIN
    other_url = _server_db(admin, backend)
    a = make_lock(db_url, cluster, "a", 4.0, clock=clock)
    b = make_lock(other_url, cluster, "b", 4.0, clock=clock)
    try:
        assert a.try_acquire()
        assert b.try_acquire(), (
            "the other metastore's cluster of the same name has a lock of its own"
        )
        assert a.verify() and b.verify()
    finally:
        a.close()
        b.close()
        _drop_server_db(admin, other_url)


def test_release_lets_the_other_acquire(make: MakeLock) -> None:
    a, b = make("a"), make("b")
    assert a.try_acquire()
    a.release()
    assert b.try_acquire()
    a.release()  # not ours: changes nothing
    assert b.verify()


def test_close_without_release_frees_the_lock(
    make: MakeLock, backend: str, clock: WallClock
) -> None:
    a, b = make("a", timeout_s=2.0), make("b", timeout_s=2.0)
    assert a.try_acquire()
    a.close()
    if backend == "sqlite":
        assert not b.try_acquire(), "a lease outlives its holder until it expires"
        clock.advance(2.1)
    wait_for("the standby to acquire the lock", b.try_acquire, timeout=3.0)
    assert b.verify()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_killed_holder_session_loses_the_lock(
    make: MakeLock, db_url: str, backend: str, cluster: str
) -> None:
    a, b = make("a"), make("b")
    assert a.try_acquire()
    kill_holder_session(db_url, backend, cluster)
    assert not a.verify()
    wait_for("the standby to acquire the lock", b.try_acquire, timeout=3.0)
    assert not a.try_acquire(), "the killed holder reconnects as a mere candidate"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_server_drops_a_silent_holder(make: MakeLock) -> None:
    a, b = make("a", timeout_s=2.0), make("b", timeout_s=2.0)
    assert a.try_acquire()
    took = wait_for("the standby to acquire the lock", b.try_acquire, timeout=6.0)
    assert took >= 1.5, f"the lock was freed after {took:.2f} s, before the holder's timeout"
    assert not a.verify()
    print(f"silent holder's lock freed after {took:.2f} s")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_expired_lease_is_taken_over(make: MakeLock, clock: WallClock) -> None:
    a, b = make("a", timeout_s=2.0), make("b", timeout_s=2.0)
    assert a.try_acquire()
    clock.advance(1.5)
    assert a.verify(), "verify renews the lease"
    clock.advance(1.5)
    assert not b.try_acquire(), "the renewed lease has not expired"
    clock.advance(2.1)
    assert b.try_acquire()
    assert not a.verify()
    assert not a.try_acquire()
    a.release()  # not ours: the new holder keeps it
    assert b.verify()
