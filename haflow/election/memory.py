"""An in-memory election for unit tests: candidates queue in join order; the first leads.

It models what the real electors guarantee and what they do not: a disconnected candidate
stops leading at once, but keeps its place (like a ZooKeeper session) until it is expired.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from haflow.election.base import Elector


class MemoryElection:
    def __init__(self) -> None:
        self._queue: list[str] = []
        self._away: dict[str, float] = {}
        self._lock = threading.Lock()

    def join(self, name: str) -> None:
        with self._lock:
            if name not in self._queue:
                self._queue.append(name)

    def leave(self, name: str) -> None:
        """The candidate's session ends (crash, stop or expiry): the next one may lead."""
        with self._lock:
            if name in self._queue:
                self._queue.remove(name)
            self._away.pop(name, None)

    def disconnect(self, name: str, at: float) -> None:
        with self._lock:
            self._away[name] = at

    def reconnect(self, name: str) -> None:
        with self._lock:
            self._away.pop(name, None)

    def leader(self) -> str | None:
        with self._lock:
            return self._queue[0] if self._queue else None

    def position(self, name: str) -> int | None:
        with self._lock:
            return self._queue.index(name) if name in self._queue else None

    def away_since(self, name: str) -> float | None:
        with self._lock:
            return self._away.get(name)


class MemoryElector(Elector):
    mode = "memory"

    def __init__(
        self, election: MemoryElection, name: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.election = election
        self.name = name
        self.monotonic = monotonic

    def start(self) -> None:
        self.election.join(self.name)

    def poll(self, now: datetime) -> bool:
        return self.connected and self.election.leader() == self.name

    @property
    def connected(self) -> bool:
        return self.election.away_since(self.name) is None

    def disconnected_for(self) -> float:
        since = self.election.away_since(self.name)
        return 0.0 if since is None else self.monotonic() - since

    def position(self) -> int | None:
        return self.election.position(self.name)

    def release(self) -> None:
        self.election.leave(self.name)
        self.election.join(self.name)

    def stop(self) -> None:
        self.election.leave(self.name)
