"""One contract, every elector: in-memory, database (SQLite, PostgreSQL, MariaDB), ZooKeeper,
and the failover policy (ZooKeeper + PostgreSQL).

The contract: among live candidates exactly one leads; a resignation hands over; a crashed
leader's place is taken; a new candidate joining changes nothing; a leader cut off from its
coordination service stops leading at once.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kazoo.client import KazooState

from haflow.election.base import Elector
from haflow.election.database import DatabaseElector
from haflow.election.memory import MemoryElection, MemoryElector
from haflow.election.policy import FailoverElector
from haflow.election.zookeeper import ZooKeeperElector
from tests.integration.conftest import database_url
from tests.integration.test_db_locks import kill_holder_session
from tests.zkensemble import drop_connection, expire_session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAST_DB: dict[str, Any] = {
    "lock_timeout_s": 6.0,  # no test waits on it (a crash closes the session, a cut kills it)
    "retry_interval_s": 0.1,
    "heartbeat_interval_s": 0.2,
}


class Harness:
    """Makes candidates of one kind and injects the faults the contract talks about."""

    def __init__(self) -> None:
        self.cluster = f"c{uuid.uuid4().hex[:8]}"
        self.made: list[Elector] = []

    def make(self, name: str) -> Elector:
        e = self._new(name)
        e.start()
        self.made.append(e)
        return e

    def _new(self, name: str) -> Elector:
        raise NotImplementedError

    def crash(self, e: Elector) -> None:
        raise NotImplementedError

    def cut_off(self, e: Elector, observe: Callable[[], bool]) -> bool:
        """Cut `e` off its coordination service; return what `observe()` said while it was."""
        raise NotImplementedError

    def close(self) -> None:
        for e in self.made:
            with contextlib.suppress(Exception):  # a crashed candidate may refuse to stop
                e.stop()


class MemoryHarness(Harness):
    def __init__(self) -> None:
        super().__init__()
        self.election = MemoryElection()

    def _new(self, name: str) -> Elector:
        return MemoryElector(self.election, name)

    def crash(self, e: Elector) -> None:
        self.election.leave(e.name)  # type: ignore[attr-defined]

    def cut_off(self, e: Elector, observe: Callable[[], bool]) -> bool:
        self.election.disconnect(e.name, time.monotonic())  # type: ignore[attr-defined]
        seen = observe()
        self.election.reconnect(e.name)  # type: ignore[attr-defined]
        return seen


class DatabaseHarness(Harness):
    def __init__(self, url: str, backend: str) -> None:
        super().__init__()
        self.url = url
        self.backend = backend

    def _new(self, name: str) -> Elector:
        return DatabaseElector(self.url, self.cluster, name, **FAST_DB)

    def crash(self, e: Elector) -> None:
        e._lock.close()  # type: ignore[attr-defined]  # the process died: its session closes
        self.made.remove(e)

    def cut_off(self, e: Elector, observe: Callable[[], bool]) -> bool:
        if self.backend == "sqlite":
            pytest.skip("a SQLite file has no connection to cut")
        kill_holder_session(self.url, self.backend, self.cluster)
        time.sleep(FAST_DB["heartbeat_interval_s"] * 1.5)  # its next heartbeat is due by then
        return observe()


class ZooKeeperHarness(Harness):
    def __init__(self, hosts: str) -> None:
        super().__init__()
        self.hosts = hosts

    def _new(self, name: str) -> Elector:
        return ZooKeeperElector(self.hosts, self.cluster, name, session_timeout_s=4.0)

    def _client(self, e: Elector) -> Any:
        return e.client  # type: ignore[attr-defined]

    def crash(self, e: Elector) -> None:
        expire_session(self._client(e))
        e.stop()
        self.made.remove(e)

    def cut_off(self, e: Elector, observe: Callable[[], bool]) -> bool:
        seen: list[bool] = []

        def on_state(state: str) -> None:  # runs after the elector's own listener
            if state == KazooState.SUSPENDED and not seen:
                seen.append(observe())

        self._client(e).add_listener(on_state)
        drop_connection(self._client(e))
        assert seen, "the client never went SUSPENDED"
        return seen[0]


class PolicyHarness(ZooKeeperHarness):
    def __init__(self, hosts: str, url: str) -> None:
        super().__init__(hosts)
        self.url = url

    def _new(self, name: str) -> Elector:
        zk = ZooKeeperElector(self.hosts, self.cluster, name, session_timeout_s=4.0)
        return FailoverElector(zk, DatabaseElector(self.url, self.cluster, name, **FAST_DB), 4.0)

    def _client(self, e: Elector) -> Any:
        return e.order.client  # type: ignore[attr-defined]

    def crash(self, e: Elector) -> None:
        e.lock._lock.close()  # type: ignore[attr-defined]
        super().crash(e)


KINDS = ["memory", "sqlite", "postgresql", "mysql", "zookeeper", "policy"]


@pytest.fixture(params=KINDS)
def harness(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Harness]:
    kind = request.param
    h: Harness
    if kind == "memory":
        h = MemoryHarness()
    elif kind in ("sqlite", "postgresql", "mysql"):
        h = DatabaseHarness(database_url(kind, database_urls, tmp_path_factory.mktemp(kind)), kind)
    elif kind == "zookeeper":
        h = ZooKeeperHarness(request.getfixturevalue("zk_hosts"))
    else:
        pg = database_url("postgresql", database_urls, tmp_path_factory.mktemp("pg"))
        h = PolicyHarness(request.getfixturevalue("zk_hosts"), pg)
    yield h
    h.close()


def held_for_s(e: object) -> float:
    """How long a claim of `e` to lead stays true, at least, once its poll said so: the time
    its coordination service keeps the lock of a holder gone silent (a stalled process)."""
    if isinstance(e, DatabaseElector):
        return e.lock_timeout_s  # MySQL's wait_timeout, PostgreSQL's idle_session_timeout
    if isinstance(e, ZooKeeperElector):
        return e.session_timeout_s
    if isinstance(e, FailoverElector):
        return min(held_for_s(e.order), held_for_s(e.lock))
    return math.inf


def leaders(candidates: list[Elector]) -> list[Elector]:
    """The candidates that lead now, asserting that no two claims overlap.

    Each candidate is polled in turn; a claim is true from the end of its poll for at least
    `held_for_s`. Two claims closer than that are two leaders at once. Two further apart are
    not: a candidate stalled past its lock's timeout (a loaded machine) has lost the lock to
    the next, and says so at its next poll, as a leader does."""
    claims: list[tuple[Elector, float]] = []
    for e in candidates:
        if e.poll(NOW):
            claims.append((e, time.monotonic()))
    for (a, t_a), (b, t_b) in itertools.combinations(claims, 2):
        apart = t_b - t_a
        assert apart >= min(held_for_s(a), held_for_s(b)), (
            f"two candidates lead at once: #{candidates.index(a)} and #{candidates.index(b)}, "
            f"{apart:.3f} s apart"
        )
    if len(claims) > 1:  # the earlier claims are stale: ask again
        return leaders(candidates)
    return [e for e, _ in claims]


def settle(candidates: list[Elector], timeout: float = 15.0) -> Elector:
    """Poll until exactly one leads; never allow two at once on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now_leading = leaders(candidates)
        if now_leading:
            return now_leading[0]
        time.sleep(0.05)
    raise AssertionError(f"no leader within {timeout} s")


def steady(candidates: list[Elector], leader: Elector, rounds: int = 10) -> None:
    for _ in range(rounds):
        assert leaders(candidates) == [leader]
        time.sleep(0.05)


def test_single_leader(harness: Harness) -> None:
    cands = [harness.make(f"n{i}") for i in range(3)]
    steady(cands, settle(cands))


def test_resign_hands_over(harness: Harness) -> None:
    cands = [harness.make(f"n{i}") for i in range(3)]
    first = settle(cands)
    first.release()
    assert first.poll(NOW) is False or len(cands) == 1
    others = [c for c in cands if c is not first]
    second = settle(others)
    assert second is not first
    steady(cands, settle(cands))


def test_crashed_leader_is_replaced(harness: Harness) -> None:
    cands = [harness.make(f"n{i}") for i in range(3)]
    dead = settle(cands)
    harness.crash(dead)
    rest = [c for c in cands if c is not dead]
    steady(rest, settle(rest, timeout=20))


def test_newcomer_does_not_unseat_the_leader(harness: Harness) -> None:
    cands = [harness.make(f"n{i}") for i in range(2)]
    leader = settle(cands)
    cands.append(harness.make("late"))
    steady(cands, leader)


def test_leadership_while_cut_off(harness: Harness) -> None:
    """ZooKeeper alone: no leadership while SUSPENDED (kazoo: a lock is not valid then). The
    failover policy: the leader keeps leading on the database lock it holds, without a pause;
    the lock keeps it the only leader."""
    cands = [harness.make(f"n{i}") for i in range(2)]
    leader = settle(cands)
    keeps = isinstance(harness, PolicyHarness)
    assert harness.cut_off(leader, lambda: leader.poll(NOW)) is keeps
    steady(cands, settle(cands, timeout=20))


def test_zk_auth_protects_the_election_nodes(zk_hosts: str) -> None:
    """`[election] zk_auth` gives the election nodes a digest ACL: strangers cannot touch them."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    elector = ZooKeeperElector(
        zk_hosts, "secured", "s1", session_timeout_s=4.0, auth="haflow:s3cret"
    )
    elector.start()
    stranger = KazooClient(hosts=zk_hosts)
    stranger.start(timeout=15)
    try:
        settle([elector])
        path = "/haflow/secured/election"
        acls, _ = elector.client.get_acls(path)
        assert [(a.id.scheme, a.id.id.split(":")[0]) for a in acls] == [("digest", "haflow")]
        with pytest.raises(NoAuthError):
            stranger.get_children(path)
        with pytest.raises(NoAuthError):
            stranger.delete(path, recursive=True)
    finally:
        stranger.stop()
        stranger.close()
        elector.stop()
        owner = KazooClient(hosts=zk_hosts, auth_data=[("digest", "haflow:s3cret")])
        owner.start(timeout=15)
        owner.delete("/haflow", recursive=True)  # protected too: the chroot cleanup could not
        owner.stop()
        owner.close()
