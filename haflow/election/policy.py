"""The failover policy: ZooKeeper orders the candidates, the database lock decides.

- ZooKeeper connected: the candidate ZooKeeper names leader, or the next in line, may take the
  database lock; whoever holds it leads. The next in line need not wait for a killed leader's
  session to expire: the kernel closes the dead leader's database connection at once, which
  frees the lock. Everyone else lets the lock go.
- A leader cut off from ZooKeeper (SUSPENDED, or the whole ensemble down) keeps leading on the
  lock it holds, without a pause: the lock alone makes it the only leader (a candidate that
  ZooKeeper now puts first cannot take the lock while it is held), and the fencing epoch
  rejects whatever it writes once it has lost the lock. Its mode says `database` meanwhile.
  It loses the lock, and stops at once, when it cannot verify it on the metastore.
- A candidate that does not hold the lock and has been without ZooKeeper for
  `fallback_after_s` competes on the database lock alone (so a leader that dies during an
  ensemble outage is replaced).
- ZooKeeper back: the order applies again; a leader that is not first or second in it releases
  the lock (one whose candidate node is still being created after a LOST session keeps it
  until its place is known). At no point can two candidates lead: only one holds the lock,
  and the fencing epoch rejects whatever a deposed leader still tries to write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from haflow.election.base import Elector


class OrderingElector(Protocol):
    """What the policy needs of ZooKeeper (or of the in-memory stand-in)."""

    mode: str

    def start(self) -> None: ...
    def poll(self, now: datetime) -> bool: ...
    def release(self) -> None: ...
    def stop(self) -> None: ...
    def healthy(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    def disconnected_for(self) -> float: ...
    def position(self) -> int | None: ...


class LockElector(Protocol):
    def start(self) -> None: ...
    def poll(self, now: datetime) -> bool: ...
    def release(self) -> None: ...
    def stop(self) -> None: ...
    def healthy(self) -> bool: ...
    @property
    def holding(self) -> bool: ...


def fallback_note(fallback_after_s: float) -> str:
    """What the ZooKeeper elector says about the fallback when the ensemble is unreachable."""
    return (
        f"database fallback in use: after {fallback_after_s:g} s without ZooKeeper the "
        "candidates compete on the database lock alone"
    )


class FailoverElector(Elector):
    def __init__(self, order: OrderingElector, lock: LockElector, fallback_after_s: float) -> None:
        self.order = order
        self.lock = lock
        self.fallback_after_s = fallback_after_s
        self.mode = order.mode

    def start(self) -> None:
        self.lock.start()
        self.order.start()

    def poll(self, now: datetime) -> bool:
        first = self.order.poll(now)
        if self.order.connected:
            self.mode = self.order.mode
            position = self.order.position()
            # None: our candidate node is being created again (after a LOST session); a
            # holder keeps the lock until it knows its place, rather than hand over needlessly
            if first or position == 1 or (position is None and self.lock.holding):
                return self.lock.poll(now)
            if self.lock.holding:
                self.lock.release()
            return False
        if self.lock.holding or self.order.disconnected_for() >= self.fallback_after_s:
            self.mode = "database"
            return self.lock.poll(now)
        return False

    def release(self) -> None:
        self.lock.release()
        self.order.release()

    def stop(self) -> None:
        try:
            self.order.stop()
        finally:
            self.lock.stop()

    def healthy(self) -> bool:
        return self.order.healthy() and self.lock.healthy()
