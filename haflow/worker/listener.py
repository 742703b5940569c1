"""What an attempt runner tells its observers (metrics): claims, ends, reports, abandonments.

Hooks run in the process that runs the attempt (a Celery pool process or a local executor
process); each is a no-op here. Observers must be quick and must not raise. No Prometheus here.
"""

from __future__ import annotations

from haflow.core.states import AttemptState
from haflow.metastore.records import AttemptRef, ClaimedAttempt


class AttemptListener:
    def claimed(self, claimed: ClaimedAttempt) -> None:
        """The conditional claim succeeded: this worker runs the attempt."""

    def claim_rejected(self, ref: AttemptRef) -> None:
        """The claim failed (duplicate or redelivered message): the attempt is not run."""

    def finished(
        self, claimed: ClaimedAttempt, state: AttemptState, seconds: float, accepted: bool | None
    ) -> None:
        """The attempt ended in `state` after `seconds`; `accepted` is False when its report
        was rejected (a zombie: the attempt had been taken away), None when it could not be
        reported at all (metastore unreachable)."""

    def abandoned(self, claimed: ClaimedAttempt, reason: str, seconds: float) -> None:
        """The attempt was killed because it is no longer ours: `reclaimed` (its heartbeat was
        refused) or `self_fenced` (cut off for too long)."""


NO_LISTENER = AttemptListener()
