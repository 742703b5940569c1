"""The contract of every long-running part of a daemon (listeners, watches, servers, threads).

A daemon starts its parts, checks `healthy()` on every one each iteration of its loop, and
exits non-zero naming the part when one has died: a dead metrics listener or ZooKeeper watch
must not leave the process limping on, unnoticed, when systemd or compose would restart it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class Service(Protocol):
    """A part that runs in the background between `start` and `stop`."""

    @property
    def name(self) -> str:
        """What the part is, for the log line and error naming it."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def healthy(self) -> bool:
        """False once the part has died (its thread ended, its listener closed)."""
        ...


def dead(parts: Iterable[Service]) -> list[str]:
    """The names of the parts that have died."""
    return [p.name for p in parts if not p.healthy()]


class Watchdog:
    """Checks `parts` every `every_s` from a thread of its own (for daemons whose main loop is
    not haflow's, such as the Celery worker); on the first dead part, logs it and calls
    `on_dead` with the dead parts' names, once."""

    name = "watchdog"

    def __init__(
        self,
        parts: Sequence[Service],
        on_dead: Callable[[list[str]], None],
        every_s: float = 1.0,
    ) -> None:
        self.parts = list(parts)
        self.on_dead = on_dead
        self.every_s = every_s
        self.died: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def healthy(self) -> bool:
        return not self.died

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            gone = dead(self.parts)
            if gone:
                self.died = gone
                log.error("%s died; stopping this daemon so that it is started again", gone)
                self.on_dead(gone)
                return
