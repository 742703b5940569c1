"""The metrics of the processes that run attempts: a listener on the attempt runner.

It runs in Celery pool processes and local executor processes, which record into the daemon's
multiprocess files; the daemon's /metrics adds them up.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from haflow.core.states import AttemptState
from haflow.metastore.records import AttemptRef, ClaimedAttempt
from haflow.metrics.definitions import AttemptMetricSet, attempt_metric_set
from haflow.metrics.guard import guarded
from haflow.worker.listener import AttemptListener


class AttemptMetrics(AttemptListener):
    def __init__(self, metrics: AttemptMetricSet) -> None:
        self.m = metrics

    @guarded
    def claimed(self, claimed: ClaimedAttempt) -> None:
        self.m.claims.labels("claimed").inc()

    @guarded
    def claim_rejected(self, ref: AttemptRef) -> None:
        self.m.claims.labels("rejected").inc()

    @guarded
    def finished(
        self, claimed: ClaimedAttempt, state: AttemptState, seconds: float, accepted: bool | None
    ) -> None:
        self.m.duration.observe(seconds)
        if accepted is None:
            self.m.unreported.inc()
        elif accepted:
            self.m.finished.labels(state.value).inc()
        else:
            self.m.zombies.inc()

    @guarded
    def abandoned(self, claimed: ClaimedAttempt, reason: str, seconds: float) -> None:
        self.m.abandoned.labels(reason).inc()


def attempt_metrics(registry: CollectorRegistry | None = None) -> AttemptMetrics:
    return AttemptMetrics(attempt_metric_set(registry))
