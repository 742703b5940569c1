"""A part of the scheduler daemon that works on a thread of its own while this scheduler
leads (the notification dispatcher, the retention pass): it follows leadership through the
listener hooks, from the election of an epoch until that epoch steps down or is fenced out.
From `elected`, not `took_over`: a takeover that fails half-way (the metastore away) is not
tried again, and what these parts write is fenced or conditional anyway."""

from __future__ import annotations

import threading
from datetime import datetime

from haflow.scheduler.listener import SchedulerListener


class LeaderPart(SchedulerListener):
    """Start, stop, health and the epoch it works under; subclasses give `name` and `_run`
    (which waits on `_wake`, set when leadership begins or `stop` is called)."""

    name = "leader part"

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def healthy(self) -> bool:
        return self._thread.is_alive() or not self._thread.ident or self._stop.is_set()

    @property
    def epoch(self) -> int | None:
        """The epoch to work under, None while this scheduler does not lead."""
        return None if self._stop.is_set() else self._epoch

    # the scheduler's hooks (quick, never raise)
    def elected(self, epoch: int, mode: str, now: datetime) -> None:
        self._epoch = epoch
        self._lead(epoch)
        self._wake.set()

    def stepped_down(self, epoch: int, reason: str) -> None:
        self.stand_down(epoch)

    def fenced(self, epoch: int | None) -> None:
        if epoch is not None:
            self.stand_down(epoch)

    def stand_down(self, epoch: int) -> None:
        """Stop working under `epoch` (if that is the one it works under)."""
        with self._lock:
            if self._epoch == epoch:
                self._epoch = None

    def _lead(self, epoch: int) -> None:
        """Called when leadership of `epoch` begins, before the thread is woken."""

    def _run(self) -> None:
        raise NotImplementedError
