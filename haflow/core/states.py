"""States of runs and task instances, and the trigger rules that gate a task on its upstreams."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCESS, RunState.FAILED)


class TaskState(StrEnum):
    """State of a task instance; `attempt` on the instance says which attempt it refers to."""

    NONE = "none"  # not yet ready: waiting for upstreams
    QUEUED = "queued"  # attempt committed and handed to the executor, not yet claimed
    RUNNING = "running"  # attempt claimed by a worker
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"  # a sensor between pokes: it holds no slot

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES


IN_FLIGHT_TASK_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING})
"""An attempt is committed and not yet reported: only claims, heartbeats and reports change
a task instance in these states (besides the leader itself)."""

BETWEEN_ATTEMPTS = frozenset({TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE})
"""No attempt in flight: the next one is queued once `next_try_at` is due."""

FINISHED_TASK_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED}
)


class AttemptState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LOST = "lost"  # its worker died or vanished; reclaimed by the leader
    RESCHEDULED = "rescheduled"  # a sensor's poke found nothing yet: it pokes again later


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ALL_FAILED = "all_failed"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ONE_DONE = "one_done"
    ALL_SKIPPED = "all_skipped"
    ALWAYS = "always"
