"""The leader's notification dispatcher: claims due notifications of the outbox under the
leader's epoch and delivers them on a few threads of its own, so a slow receiver or a
callback that hangs never holds up scheduling.

It follows the scheduler's leadership through the listener hooks: it delivers from the election
of an epoch until that epoch steps down or is fenced out; a claim refused as fenced stops it
too. What it claimed and could not settle (the leader died, the
metastore went away) is claimed again by the next leader under the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from haflow.core.clock import Clock, utcnow
from haflow.core.planner import Decisions
from haflow.errors import FencedOut, HaflowError
from haflow.metastore.records import AttemptRef, NotificationRow
from haflow.metastore.repository import Repository
from haflow.notify.send import DeliveryError
from haflow.scheduler.leader_part import LeaderPart

log = logging.getLogger(__name__)

_LEASE_MARGIN_S = 30.0  # a claim outlives the delivery's timeout by this much


@dataclass(frozen=True)
class DispatchConfig:
    parallelism: int = 4
    poll_s: float = 0.5
    timeout_s: float = 30.0
    max_tries: int = 5
    retry_delay_s: float = 10.0


class NotificationDispatcher(LeaderPart):
    """A part of the scheduler daemon that delivers while this scheduler leads."""

    name = "notification dispatcher"

    def __init__(
        self,
        repo: Repository,
        send: Callable[[NotificationRow], None],
        cfg: DispatchConfig,
        *,
        clock: Clock = utcnow,
        settled: Callable[[str], None] = lambda state: None,
    ) -> None:
        super().__init__()
        self.repo = repo
        self.send = send  # one try; raises DeliveryError (or anything) when it failed
        self.cfg = cfg
        self.clock = clock
        self.settled = settled  # told each outcome: delivered, pending (retry), failed, lost
        self._busy = 0
        self._pool = ThreadPoolExecutor(cfg.parallelism, thread_name_prefix="notify")

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def applied(self, decisions: Decisions, refs: Sequence[AttemptRef], now: datetime) -> None:
        if decisions.finish_runs or decisions.changes:  # may have written notifications
            self._wake.set()

    # the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._claim()
            except Exception:  # a bug here must not end the thread (and the scheduler)
                log.exception("claiming notifications")
            self._wake.wait(self.cfg.poll_s)
            self._wake.clear()

    def _claim(self) -> None:
        epoch = self.epoch
        with self._lock:
            free = self.cfg.parallelism - self._busy
        if epoch is None or free <= 0:
            return
        try:
            claims = self.repo.notifications.claim(
                epoch, self.clock(), limit=free, lease_s=self.cfg.timeout_s + _LEASE_MARGIN_S
            )
        except FencedOut:
            self.stand_down(epoch)
            return
        except HaflowError as exc:
            log.warning("cannot claim notifications: %s", exc)
            return
        for n in claims:
            if self._stop.is_set():
                return  # what is claimed and not sent is claimed again after its lease
            with self._lock:
                self._busy += 1
            self._pool.submit(self._deliver, n)

    def _deliver(self, n: NotificationRow) -> None:
        try:
            error = None
            try:
                self.send(n)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a bug in a sender must not end the dispatcher
                log.exception("delivering notification %s", n.key)
                error = f"{type(exc).__name__}: {exc}"
            if error:
                log.warning("notification %s (%s), try %s: %s", n.key, n.event, n.tries, error)
            try:
                state = self.repo.notifications.settle(
                    n,
                    error,
                    self.clock(),
                    max_tries=self.cfg.max_tries,
                    retry_delay_s=self.cfg.retry_delay_s,
                )
            except Exception as exc:  # its claim runs out; the next claim delivers it again
                log.warning("cannot record the outcome of notification %s: %s", n.key, exc)
                state = None
            self.settled(state or "lost")
        finally:
            with self._lock:
                self._busy -= 1
            self._wake.set()
