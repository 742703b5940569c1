"""The one rule for what follows an ended attempt, used by every path that ends one: the
worker's own report (`metastore.repository.attempts.finish`) and the leader's reclaim
and timeout backstop (`core.reclamation.supervise`).

- success: the task instance succeeds.
- rescheduled (a sensor in reschedule mode whose poke found nothing yet): up for reschedule,
  due at the poke time it asked for; no retry used, no slot held until then.
- failed, timed out: a retry is used; up for retry after `retry_delay`, or failed when the
  retries are spent.
- lost, whoever noticed it (the leader reclaiming a silent attempt, or the worker reporting it
  stopped mid-way): counted in `losses`; retried at once without using a retry (unless
  `[worker] reclaim_consumes_retry`), and failed at `[worker] max_losses`, the cap on a task
  that keeps killing its worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from haflow.core.states import AttemptState, TaskState


class Ending(StrEnum):
    """How an attempt ended, and who could tell."""

    SUCCESS = "success"
    FAILED = "failed"  # the task's own code failed (exit code, exception, could not start)
    TIMED_OUT = "timed_out"  # killed at its execution_timeout (worker, or the leader's backstop)
    RECLAIMED = "reclaimed"  # lost, judged by the leader: no heartbeat in time
    ABANDONED = "abandoned"  # lost, reported by its worker: it stopped while the attempt ran
    RESCHEDULED = "rescheduled"  # a sensor's poke found nothing yet; it pokes again later

    @property
    def lost(self) -> bool:
        return self in (Ending.RECLAIMED, Ending.ABANDONED)

    @property
    def attempt_state(self) -> AttemptState:
        return AttemptState.LOST if self.lost else AttemptState(self.value)


@dataclass(frozen=True)
class Tally:
    """What a task instance has used so far, and what it may use."""

    failures: int  # attempts that used up a retry
    losses: int  # attempts lost with their worker
    retries: int
    retry_delay_s: float
    retry_backoff_cap_s: float | None = None  # exponential backoff up to this; None: fixed


@dataclass(frozen=True)
class EndPolicy:
    max_losses: int = 3
    reclaim_consumes_retry: bool = False


DEFAULT_POLICY = EndPolicy()


@dataclass(frozen=True)
class AfterAttempt:
    """The task instance's next state and counters; `note` says why when a cap decided."""

    state: TaskState
    failures: int
    losses: int
    next_try_at: datetime | None
    note: str = ""


def after_attempt(
    tally: Tally,
    ending: Ending,
    policy: EndPolicy,
    now: datetime,
    poke_at: datetime | None = None,
) -> AfterAttempt:
    """What the task instance becomes after its running attempt ended as `ending`; a
    rescheduled one is due again at `poke_at` (now if not given)."""
    if ending is Ending.SUCCESS:
        return AfterAttempt(TaskState.SUCCESS, tally.failures, tally.losses, None)
    if ending is Ending.RESCHEDULED:
        due = poke_at or now
        return AfterAttempt(TaskState.UP_FOR_RESCHEDULE, tally.failures, tally.losses, due)
    losses = tally.losses + 1 if ending.lost else tally.losses
    if ending.lost and losses >= policy.max_losses:
        note = f"lost {losses} times, the cap ([worker] max_losses): failed"
        return AfterAttempt(TaskState.FAILED, tally.failures + 1, losses, None, note)
    nxt = after_failure(
        failures=tally.failures,
        retries=tally.retries,
        retry_delay_s=tally.retry_delay_s,
        backoff_cap_s=tally.retry_backoff_cap_s,
        now=now,
        counts_as_failure=not ending.lost or policy.reclaim_consumes_retry,
    )
    return AfterAttempt(nxt.state, nxt.failures, losses, nxt.next_try_at)


@dataclass(frozen=True)
class AfterFailure:
    state: TaskState
    failures: int
    next_try_at: datetime | None


def after_failure(
    *,
    failures: int,
    retries: int,
    retry_delay_s: float,
    now: datetime,
    counts_as_failure: bool = True,
    backoff_cap_s: float | None = None,
) -> AfterFailure:
    """What a task instance becomes after an attempt that did not succeed.

    `failures` counts the attempts that used up a retry; one that does not count (a lost
    attempt, unless configured otherwise) is retried at once rather than after the delay.
    """
    if not counts_as_failure:
        return AfterFailure(TaskState.UP_FOR_RETRY, failures, now)
    used = failures + 1
    if used <= retries:
        delay = retry_delay_s
        if backoff_cap_s is not None:  # 1x, 2x, 4x ... the delay, up to the cap
            delay = min(retry_delay_s * 2 ** min(used - 1, 40), backoff_cap_s)
        return AfterFailure(TaskState.UP_FOR_RETRY, used, now + timedelta(seconds=delay))
    return AfterFailure(TaskState.FAILED, used, None)
