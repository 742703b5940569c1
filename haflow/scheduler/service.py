"""The scheduler daemon's main loop: follow the elector, lead under an epoch, step down cleanly.

Invariants: scheduling writes happen only between `leadership.take` and stepping down, all under
the epoch taken; a FencedOut or a lost election ends leadership at once; a dead executor or
elector stops the daemon rather than letting it limp on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from haflow.core.clock import Clock, utcnow
from haflow.election.base import Elector
from haflow.errors import BackendUnavailable, FencedOut, HaflowError
from haflow.executors.base import Executor
from haflow.metastore.repository import Repository
from haflow.scheduler.listener import NO_LISTENER, SchedulerListener
from haflow.scheduler.loop import SchedulingLoop
from haflow.service import Service, dead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    loop_interval_s: float = 0.2
    heartbeat_s: float = 1.0


def scheduler_id(hostname: str | None = None) -> str:
    return f"{hostname or socket.getfqdn()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SchedulerService:
    def __init__(
        self,
        repo: Repository,
        elector: Elector,
        executor: Executor,
        loop: SchedulingLoop,
        cfg: ServiceConfig,
        *,
        sid: str | None = None,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        extras: Sequence[Service] = (),
        listener: SchedulerListener = NO_LISTENER,
    ) -> None:
        self.repo = repo
        self.elector = elector
        self.executor = executor
        self.loop = loop
        self.cfg = cfg
        self.sid = sid or scheduler_id()
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.extras = list(extras)  # parts beside the loop: parsing, wake-up, worker watch, metrics
        self.listener = listener  # observes leadership and the loop (metrics)
        self.epoch: int | None = None
        self._last_beat = float("-inf")
        self.stop_requested = threading.Event()

    def run(self) -> None:
        """Run until `stop_requested` is set; then resign and stop the executor."""
        self.executor.start()
        for extra in self.extras:
            extra.start()
        self.elector.start()
        try:
            while not self.stop_requested.is_set():
                busy = self.step()
                if not busy:
                    self.executor.wake.wait(self.cfg.loop_interval_s)
                    self.executor.wake.clear()
        finally:
            self._shutdown()

    def step(self) -> bool:
        """One iteration; True when it did scheduling work (so no sleeping before the next)."""
        self._check_parts()
        now = self.clock()
        leading = self.elector.poll(now)
        self.listener.stepped(leading, self.elector.mode)
        try:
            if leading and self.epoch is None:
                self._become_leader()
            elif not leading and self.epoch is not None:
                self._step_down("elector says leadership is lost")
            self._heartbeat()
            if self.epoch is None:
                return False
            return self._tick(self.epoch)
        except FencedOut as exc:
            self._fenced(exc)
        except BackendUnavailable as exc:
            log.warning("metastore unavailable: %s", exc)
            self.sleep(min(1.0, self.cfg.loop_interval_s * 5))
        return False

    def _tick(self, epoch: int) -> bool:
        started = self.monotonic()
        busy = self.loop.tick(epoch)
        self.listener.ticked(epoch, self.monotonic() - started, busy)
        return busy

    def _become_leader(self) -> None:
        now = self.clock()
        self.listener.electing(now)
        self.epoch = self.repo.leadership.take(self.sid, self.elector.mode, now, reason="elected")
        log.info("leading with epoch %s (%s elector)", self.epoch, self.elector.mode)
        self.listener.elected(self.epoch, self.elector.mode, now)
        self.loop.take_over(self.epoch)
        self.listener.took_over(self.epoch, self.clock())

    def _step_down(self, reason: str) -> None:
        """Stop leading; the resignation is itself a fenced write, so a leader that was
        deposed while it could not see it (paused, partitioned) finds out and records it."""
        epoch, self.epoch = self.epoch, None
        if epoch is None:
            return
        level = logging.INFO if reason == "shutdown" else logging.WARNING
        log.log(level, "stepping down from epoch %s: %s", epoch, reason)
        self.listener.stepped_down(epoch, "shutdown" if reason == "shutdown" else "elector")
        try:
            self.repo.leadership.resign(epoch, self.sid, self.clock(), reason)
        except FencedOut as exc:
            self.listener.fenced(epoch)
            self._record_fenced(epoch, exc)
        except HaflowError as exc:
            log.warning("could not record the resignation of epoch %s: %s", epoch, exc)

    def _fenced(self, exc: FencedOut) -> None:
        epoch, self.epoch = self.epoch, None
        log.warning("fenced out of epoch %s: %s", epoch, exc)
        self.listener.fenced(epoch)
        if epoch is not None:
            self.listener.stepped_down(epoch, "fenced")
        self.elector.release()
        self._record_fenced(epoch, exc)

    def _record_fenced(self, epoch: int | None, exc: FencedOut) -> None:
        try:
            self.repo.record_event(
                "leader.fenced_out", self.clock(), epoch=epoch, detail={"error": str(exc)}
            )
        except HaflowError as err:
            log.warning("could not record the fenced write: %s", err)

    def _heartbeat(self) -> None:
        if self.monotonic() - self._last_beat < self.cfg.heartbeat_s:
            return
        state = "leader" if self.epoch is not None else "standby"
        self.repo.members.heartbeat_scheduler(
            self.sid,
            hostname=socket.getfqdn(),
            pid=os.getpid(),
            state=state,
            epoch=self.epoch,
            mode=self.elector.mode,
            now=self.clock(),
        )
        self._last_beat = self.monotonic()

    def _check_parts(self) -> None:
        self.executor.maintain()
        if not self.executor.healthy():
            raise HaflowError(
                "the executor died (a worker process exited); stopping the "
                "scheduler so a healthy one takes over"
            )
        if not self.elector.healthy():
            raise HaflowError("the elector failed; stopping the scheduler")
        gone = dead(self.extras)
        if gone:
            raise HaflowError(
                f"{', '.join(gone)} died; stopping the scheduler so that its supervisor "
                "(systemd, compose) starts it again"
            )

    def _shutdown(self) -> None:
        try:
            self._step_down("shutdown")
            self.elector.stop()
            self.executor.stop()
            for extra in self.extras:
                extra.stop()
            self.repo.members.heartbeat_scheduler(
                self.sid,
                hostname=socket.getfqdn(),
                pid=os.getpid(),
                state="stopped",
                epoch=None,
                mode=self.elector.mode,
                now=self.clock(),
            )
        except HaflowError as exc:
            log.warning("unclean shutdown: %s", exc)
        finally:
            self.repo.engine.dispose()
