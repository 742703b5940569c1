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
from haflow.metastore.records import AttemptRef


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


NO_LISTENER = SchedulerListener()
