"""The failover policy: ZooKeeper orders the candidates, the database lock decides.

- ZooKeeper connected: the candidate ZooKeeper names leader, or the next in line, may take the
  database lock; whoever holds it leads. The next in line need not wait for a killed leader's
  session to expire: the kernel closes the dead leader's database connection at once, which
  frees the lock. Everyone else lets the lock go.
- ZooKeeper unreachable for `fallback_after_s`: candidates compete on the database lock alone.
- ZooKeeper back: the order applies again; a fallback leader that is not first or second in it
  releases the lock. At no point can two candidates lead: only one holds the lock, and the
  fencing epoch rejects whatever a deposed leader still tries to write.
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
            if first or self.order.position() == 1:
                return self.lock.poll(now)
            if self.lock.holding:
                self.lock.release()
            return False
        if self.order.disconnected_for() >= self.fallback_after_s:
            self.mode = "database"
            return self.lock.poll(now)
        if self.lock.holding:
            self.lock.poll(now)  # keep the lock's session busy, but do not lead while suspended
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
