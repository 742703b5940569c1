"""DatabaseElector's timing and state with a scripted lock and a hand-moved clock: no servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from haflow.election.database import DatabaseElector
from haflow.errors import BackendUnavailable
from haflow.metastore.repository.locks import LeaderLock

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeLock(LeaderLock):
    """Records calls; `free`, `ours` and `fail` script what the server would answer."""

    def __init__(self) -> None:
        self.free = True
        self.ours = False
        self.fail: Exception | None = None
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None and name != "close":
            raise self.fail

    def try_acquire(self) -> bool:
        self._call("try_acquire")
        if self.free or self.ours:
            self.free, self.ours = False, True
        return self.ours

    def verify(self) -> bool:
        self._call("verify")
        return self.ours

    def release(self) -> None:
        self._call("release")
        if self.ours:
            self.free, self.ours = True, False

    def close(self) -> None:
        self._call("close")
        if self.ours:
            self.free, self.ours = True, False

    def count(self, name: str) -> int:
        return self.calls.count(name)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lock() -> FakeLock:
    return FakeLock()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def elector(lock: FakeLock, clock: Clock) -> DatabaseElector:
    made: list[tuple[str, str, str, float]] = []

    def factory(url: str, cluster: str, holder: str, timeout_s: float) -> LeaderLock:
        made.append((url, cluster, holder, timeout_s))
        return lock

    e = DatabaseElector(
        "sqlite:///x.db",
        "c1",
        "me",
        lock_timeout_s=4.0,
        retry_interval_s=0.5,
        heartbeat_interval_s=1.0,
        monotonic=clock,
        lock_factory=factory,
    )
    assert e.mode == "database"
    e.start()
    assert made == [("sqlite:///x.db", "c1", "me", 4.0)]
    return e


def test_not_started_never_leads(lock: FakeLock, clock: Clock) -> None:
    e = DatabaseElector("sqlite://", "c", "me", monotonic=clock, lock_factory=lambda *a: lock)
    assert not e.poll(NOW)
    assert lock.calls == []


def test_acquires_on_first_poll_when_free(elector: DatabaseElector, lock: FakeLock) -> None:
    assert elector.poll(NOW)
    assert elector.holding
    assert lock.calls == ["try_acquire"]


def test_retries_only_every_retry_interval(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    lock.free = False
    assert not elector.poll(NOW)
    clock.t += 0.375
    assert not elector.poll(NOW)
    assert lock.count("try_acquire") == 1
    clock.t += 0.125
    assert not elector.poll(NOW)
    assert lock.count("try_acquire") == 2
    lock.free = True
    clock.t += 0.25
    assert not elector.poll(NOW), "no try before the interval has passed"
    clock.t += 0.25
    assert elector.poll(NOW)


def test_connection_failure_means_not_leading_and_is_retried(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    lock.fail = BackendUnavailable("postgresql server db:5432 unreachable")
    assert not elector.poll(NOW)
    lock.fail = None
    clock.t += 0.5
    assert elector.poll(NOW)


def test_verifies_only_every_heartbeat_interval(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    assert elector.poll(NOW)
    for _ in range(7):
        clock.t += 0.125
        assert elector.poll(NOW)
    assert lock.count("verify") == 0
    clock.t += 0.125
    assert elector.poll(NOW)
    assert lock.count("verify") == 1
    clock.t += 0.5
    assert elector.poll(NOW)
    assert lock.count("verify") == 1
    assert lock.count("try_acquire") == 1, "a holder does not try again"


def test_failed_verify_loses_leadership_and_closes(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    assert elector.poll(NOW)
    lock.ours, lock.free = False, True  # the server dropped our session
    clock.t += 1.0
    assert not elector.poll(NOW)
    assert not elector.holding
    assert lock.calls[-2:] == ["verify", "close"]
    clock.t += 0.25
    assert not elector.poll(NOW)
    assert lock.count("try_acquire") == 1, "retrying waits a retry interval after the loss"
    clock.t += 0.25
    assert elector.poll(NOW), "the freed lock is taken again"


def test_raising_verify_loses_leadership(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    assert elector.poll(NOW)
    lock.fail = OSError("socket gone")
    clock.t += 1.0
    assert not elector.poll(NOW)
    assert lock.calls[-1] == "close"


def test_release_gives_up_but_stays_a_candidate(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    assert elector.poll(NOW)
    elector.release()
    assert not elector.holding
    assert lock.free
    assert not elector.poll(NOW)
    clock.t += 0.5
    assert not elector.poll(NOW), "a standby gets two retry intervals to take the lock"
    clock.t += 0.5
    assert elector.poll(NOW)
    assert "close" not in lock.calls


def test_failed_release_drops_the_connection(
    elector: DatabaseElector, lock: FakeLock, clock: Clock
) -> None:
    assert elector.poll(NOW)
    lock.fail = BackendUnavailable("gone")
    elector.release()
    assert not elector.holding
    assert lock.calls[-2:] == ["release", "close"]


def test_release_when_not_holding_does_nothing(elector: DatabaseElector, lock: FakeLock) -> None:
    elector.release()
    assert lock.calls == []
    assert elector.poll(NOW), "and does not delay the first try"


def test_stop_releases_and_closes(elector: DatabaseElector, lock: FakeLock, clock: Clock) -> None:
    assert elector.poll(NOW)
    elector.stop()
    assert lock.calls[-2:] == ["release", "close"]
    assert not elector.holding
    clock.t += 10
    assert not elector.poll(NOW)
    assert lock.count("try_acquire") == 1
    elector.stop()  # twice is harmless
