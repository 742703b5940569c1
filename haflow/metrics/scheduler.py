"""The scheduler's metrics: a listener on its leadership life cycle and loop.

It turns the scheduler's events into counters and histograms and keeps the state that
`collectors.SchedulerState` reads at scrape time. Every hook is guarded: a metrics failure is
logged and never reaches the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from haflow.core.planner import Decisions
from haflow.metastore.records import AttemptRef, FinishedRun
from haflow.metastore.repository.metrics import OutgoingLeader
from haflow.metrics.definitions import MAX_DAG_LABELS, OTHER_DAGS, SchedulerMetricSet
from haflow.metrics.guard import guarded
from haflow.scheduler.listener import SchedulerListener


class OutgoingLeaderSource(Protocol):
    def outgoing_leader(self) -> OutgoingLeader | None: ...


class SchedulerMetrics(SchedulerListener):
    """`started_at`: when this scheduler started; a failover is timed only when the outgoing
    leader was last seen after that (this scheduler was a standby watching, not a cold start)."""

    def __init__(
        self,
        metrics: SchedulerMetricSet,
        leaders: OutgoingLeaderSource,
        *,
        configured_mode: str,
        started_at: datetime,
    ) -> None:
        self.m = metrics
        self.leaders = leaders
        self.configured_mode = configured_mode
        self.started_at = started_at
        self.leading = False
        self.epoch = 0
        self.mode = configured_mode
        self._outgoing: OutgoingLeader | None = None
        self._dags: set[str] = set()  # the DAGs named in a dag_id label so far

    @guarded
    def stepped(self, leading: bool, mode: str) -> None:
        self.mode = mode

    @guarded
    def electing(self, now: datetime) -> None:
        self._outgoing = None
        self._outgoing = self.leaders.outgoing_leader()

    @guarded
    def elected(self, epoch: int, mode: str, now: datetime) -> None:
        self.leading, self.epoch, self.mode = True, epoch, mode
        self.m.elections.labels(election_reason(self._outgoing)).inc()

    @guarded
    def took_over(self, epoch: int, now: datetime) -> None:
        seconds = failover_seconds(self._outgoing, self.started_at, now)
        if seconds is not None:
            self.m.failover.observe(seconds)
        self._outgoing = None

    @guarded
    def stepped_down(self, epoch: int, reason: str) -> None:
        self.leading, self.epoch = False, 0
        self.m.stepdowns.labels(reason).inc()

    @guarded
    def fenced(self, epoch: int | None) -> None:
        self.m.fenced.inc()

    @guarded
    def ticked(self, epoch: int, seconds: float, busy: bool) -> None:
        self.m.loop.observe(seconds)

    @guarded
    def applied(self, decisions: Decisions, refs: Sequence[AttemptRef], now: datetime) -> None:
        for change in decisions.changes:
            if change.attempt_state == "lost":
                self.m.reclaimed.labels(reclaim_reason(change.reason)).inc()
        self.m.queued.inc(len(decisions.to_queue))
        self.m.republished.inc(max(0, len(refs) - len(decisions.to_queue)))
        for run in decisions.new_runs:
            self.m.run_delay.observe(max(0.0, (now - run.fire_at).total_seconds()))

    @guarded
    def runs_finished(self, runs: Sequence[FinishedRun]) -> None:
        for run in runs:
            dag = self._dag_label(run.dag_id)
            self.m.dag_runs_finished.labels(dag, run.state).inc()
            if run.started_at is not None:
                seconds = (run.ended_at - run.started_at).total_seconds()
                self.m.dag_run_duration.labels(dag).observe(max(0.0, seconds))

    def _dag_label(self, dag_id: str) -> str:
        """`dag_id`, or `_other` once MAX_DAG_LABELS other DAGs have a label."""
        if dag_id in self._dags or len(self._dags) < MAX_DAG_LABELS:
            self._dags.add(dag_id)
            return dag_id
        return OTHER_DAGS

    @guarded
    def notified(self, state: str) -> None:
        """A notification's try ended: its new state (`pending`: tried again later), or
        `lost` when that could not be recorded."""
        self.m.notifications.labels({"pending": "retry"}.get(state, state)).inc()


def election_reason(outgoing: OutgoingLeader | None) -> str:
    if outgoing is None:
        return "initial"
    return "handover" if outgoing.resigned else "takeover"


def failover_seconds(
    outgoing: OutgoingLeader | None, started_at: datetime, now: datetime
) -> float | None:
    if outgoing is None or outgoing.last_sign < started_at:
        return None
    return max(0.0, (now - outgoing.last_sign).total_seconds())


def reclaim_reason(reason: str) -> str:
    """The planner's reason for a lost attempt, as a label value."""
    if reason.startswith("worker's ZooKeeper session ended"):
        return "zookeeper_session"
    if reason.startswith("worker stopped heartbeating"):
        return "heartbeat_timeout"
    return "other"
