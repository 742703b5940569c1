"""What the scheduler tells its observers (metrics, tests): the leadership life cycle and the loop.

The service and the loop call these hooks on the scheduler's own thread; every hook is a no-op
here and an observer overrides those it needs. Observers must be quick and must not raise: a
hook that fails must never stop scheduling (the metrics observer guards each of its hooks).
This module knows nothing of Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from haflow.core.planner import Decisions
from haflow.metastore.records import AttemptRef, FinishedRun


class SchedulerListener:
    def stepped(self, leading: bool, mode: str) -> None:
        """Every iteration: what the elector answered, and the elector's mode right now."""

    def electing(self, now: datetime) -> None:
        """About to take leadership (before the epoch is incremented)."""

    def elected(self, epoch: int, mode: str, now: datetime) -> None:
        """Leadership taken under `epoch`."""

    def took_over(self, epoch: int, now: datetime) -> None:
        """The new leader's first fenced (scheduling) write committed."""

    def stepped_down(self, epoch: int, reason: str) -> None:
        """Leadership of `epoch` ended: reason `shutdown`, `elector` (lost) or `fenced`."""

    def fenced(self, epoch: int | None) -> None:
        """A write under `epoch` was rejected because the leader row moved on."""

    def ticked(self, epoch: int, seconds: float, busy: bool) -> None:
        """One leader iteration took `seconds`; `busy` when it changed something."""

    def applied(self, decisions: Decisions, refs: Sequence[AttemptRef], now: datetime) -> None:
        """The planner's `decisions` committed; `refs` went to the executor."""

    def runs_finished(self, runs: Sequence[FinishedRun]) -> None:
        """The last apply ended these runs."""


NO_LISTENER = SchedulerListener()


class Listeners(SchedulerListener):
    """Several observers as one: every hook is passed to each, in order."""

    def __init__(self, listeners: Sequence[SchedulerListener]) -> None:
        self.listeners = list(listeners)

    def stepped(self, leading: bool, mode: str) -> None:
        for x in self.listeners:
            x.stepped(leading, mode)

    def electing(self, now: datetime) -> None:
        for x in self.listeners:
            x.electing(now)

    def elected(self, epoch: int, mode: str, now: datetime) -> None:
        for x in self.listeners:
            x.elected(epoch, mode, now)

    def took_over(self, epoch: int, now: datetime) -> None:
        for x in self.listeners:
            x.took_over(epoch, now)

    def stepped_down(self, epoch: int, reason: str) -> None:
        for x in self.listeners:
            x.stepped_down(epoch, reason)

    def fenced(self, epoch: int | None) -> None:
        for x in self.listeners:
            x.fenced(epoch)

    def ticked(self, epoch: int, seconds: float, busy: bool) -> None:
        for x in self.listeners:
            x.ticked(epoch, seconds, busy)

    def applied(self, decisions: Decisions, refs: Sequence[AttemptRef], now: datetime) -> None:
        for x in self.listeners:
            x.applied(decisions, refs, now)

    def runs_finished(self, runs: Sequence[FinishedRun]) -> None:
        for x in self.listeners:
            x.runs_finished(runs)
