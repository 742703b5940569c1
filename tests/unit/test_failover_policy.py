"""The failover policy over the in-memory election and a fake database lock (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

from haflow.election.memory import MemoryElection, MemoryElector
from haflow.election.policy import FailoverElector

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeLockServer:
    """One lock; `drop(name)` frees a holder's lock the way a server drops a dead session."""

    def __init__(self) -> None:
        self.holder: str | None = None


class FakeLock:
    def __init__(self, server: FakeLockServer, name: str) -> None:
        self.server = server
        self.name = name
        self.polls = 0

    def start(self) -> None:
        pass

    def poll(self, now: datetime) -> bool:
        self.polls += 1
        if self.server.holder is None:
            self.server.holder = self.name
        return self.server.holder == self.name

    def release(self) -> None:
        if self.server.holder == self.name:
            self.server.holder = None

    def stop(self) -> None:
        self.release()

    def healthy(self) -> bool:
        return True

    @property
    def holding(self) -> bool:
        return self.server.holder == self.name


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def cluster(n: int = 3, fallback: float = 6.0):  # type: ignore[no-untyped-def]
    election, server, clock = MemoryElection(), FakeLockServer(), Clock()
    electors = {}
    for i in range(n):
        name = f"s{i}"
        order = MemoryElector(election, name, monotonic=clock)
        electors[name] = FailoverElector(order, FakeLock(server, name), fallback)
        electors[name].start()
    return election, server, clock, electors


def leaders(electors: dict[str, FailoverElector]) -> list[str]:
    return [name for name, e in electors.items() if e.poll(NOW)]


def test_the_first_in_order_leads_and_holds_the_lock() -> None:
    _, server, _, electors = cluster()
    assert leaders(electors) == ["s0"]
    assert server.holder == "s0"
    assert electors["s0"].mode == "memory"


def test_next_in_line_takes_the_freed_lock_before_the_old_session_expires() -> None:
    election, server, _, electors = cluster()
    leaders(electors)
    server.holder = None  # s0 was killed: its database session closed, its znode lingers
    del electors["s0"]
    assert election.leader() == "s0"
    assert leaders(electors) == ["s1"]
    assert server.holder == "s1"


def test_third_in_line_never_takes_the_lock() -> None:
    _, server, _, electors = cluster()
    server.holder = None
    assert electors["s2"].poll(NOW) is False
    assert server.holder is None


def test_leader_cut_off_from_zookeeper_keeps_leading_on_its_lock_without_a_pause() -> None:
    election, server, clock, electors = cluster()
    leaders(electors)
    election.disconnect("s0", at=clock.t)
    assert electors["s0"].poll(NOW) is True
    assert electors["s0"].mode == "database"
    assert server.holder == "s0"
    election.leave("s0")  # its session expired on the ensemble: ZooKeeper now puts s1 first
    election.disconnect("s0", at=clock.t)  # while s0 itself is still cut off
    assert leaders(electors) == ["s0"]  # s1 cannot take the lock s0 holds: one leader
    election.reconnect("s0")
    election.join("s0")  # back, but third in line: it hands the lock to the first
    assert leaders(electors) == ["s1"]


def test_leader_that_loses_its_lock_while_cut_off_stops_and_the_next_takes_over() -> None:
    election, server, clock, electors = cluster()
    leaders(electors)
    election.leave("s0")
    election.disconnect("s0", at=clock.t)
    server.holder = None  # s0's lock session ended (it could not verify it)
    assert leaders(electors) == ["s1"]


def test_whole_ensemble_down_falls_back_to_the_database_lock_after_the_delay() -> None:
    election, _server, clock, electors = cluster(fallback=6.0)
    leaders(electors)
    for name in electors:
        election.disconnect(name, at=clock.t)
    assert leaders(electors) == ["s0"]  # the leader keeps its lock: no pause
    clock.t = 5.9
    assert leaders(electors) == ["s0"]
    assert electors["s0"].mode == "database"
    assert electors["s1"].mode != "database"  # a standby waits for the delay to compete
    clock.t = 6.0
    assert leaders(electors) == ["s0"]  # the others compete now but cannot take the lock
    assert all(e.mode == "database" for e in electors.values())


def test_return_of_zookeeper_moves_leadership_back_without_two_leaders() -> None:
    election, server, clock, electors = cluster(fallback=1.0)
    leaders(electors)
    for name in electors:
        election.disconnect(name, at=clock.t)
    server.holder = None
    clock.t = 2.0
    assert leaders({"s2": electors["s2"]}) == ["s2"]  # s2 won the lock in fallback mode
    for name in electors:
        election.reconnect(name)
    # s2 is third in ZooKeeper's order: it lets the lock go, then the first in order takes it
    assert electors["s2"].poll(NOW) is False
    assert leaders(electors) == ["s0"]
    assert electors["s2"].mode == "memory"


def test_release_hands_over_to_the_next() -> None:
    _, server, _, electors = cluster()
    leaders(electors)
    electors["s0"].release()
    assert server.holder is None
    assert leaders(electors) == ["s1"]


def test_never_two_leaders_over_random_faults() -> None:
    import random

    rng = random.Random(7)
    election, _server, clock, electors = cluster(n=4, fallback=2.0)
    for _ in range(2000):
        clock.t += rng.choice([0.1, 0.5, 1.0])
        name = rng.choice(list(electors))
        action = rng.random()
        if action < 0.1:
            election.disconnect(name, at=clock.t)
        elif action < 0.3:
            election.reconnect(name)
        elif action < 0.35:
            electors[name].release()
        elif action < 0.4:
            election.leave(name)
            election.join(name)
        assert len(leaders(electors)) <= 1


def test_a_rejoining_leader_keeps_its_lock_until_it_knows_its_place() -> None:
    """Back from an outage that expired its session, the leader's candidate node is created
    again: while its place is unknown it keeps the lock instead of handing over needlessly."""
    election, server, clock, electors = cluster(n=2)
    leaders(electors)
    election.disconnect("s0", at=clock.t)
    election.leave("s0")
    election.disconnect("s0", at=clock.t)
    election.reconnect("s0")  # connected again, not yet in the order
    assert leaders(electors) == ["s0"]
    election.join("s0")  # second in line now: it may keep the lock
    assert leaders(electors) == ["s0"]
    assert server.holder == "s0"
