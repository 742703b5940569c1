"""The plain data the pure core works on: a snapshot of the metastore as the planner sees it,
the limits of one plan, and the decisions it returns. No IO, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from haflow.core.pools import DEFAULT_POOL
from haflow.core.states import RunState, TaskState, TriggerRule


class ScheduleLike(Protocol):
    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]: ...

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]: ...

    def intervals_starting(
        self, start_date: datetime, first: datetime, last: datetime
    ) -> list[tuple[datetime, datetime]]: ...


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    upstream: frozenset[str] = frozenset()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    depends_on_past: bool = False  # first tries wait for the task in the run before to succeed
    max_active_tis_per_dag: int | None = None  # its task instances in flight, all runs


@dataclass(frozen=True)
class DagSpec:
    """What the planner needs of a parsed DAG plus its row in the metastore."""

    dag_id: str
    tasks: Mapping[str, TaskSpec]
    schedule: ScheduleLike | None = None
    start_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 16
    is_paused: bool = False
    last_fire_at: datetime | None = None
    end_date: datetime | None = None  # no run for an interval that ends after it
    max_active_tasks: int | None = None  # its task instances in flight, all runs
    code_hash: str | None = None  # the code version `tasks` are of (new runs get it)


@dataclass(frozen=True)
class TISnap:
    id: int
    task_id: str
    state: TaskState
    attempt: int = 0
    failures: int = 0
    losses: int = 0  # attempts lost with their worker
    retries: int = 0
    retry_delay_s: float = 0.0
    retry_backoff_cap_s: float | None = None  # exponential backoff up to this; None: fixed
    next_try_at: datetime | None = None
    timeout_s: float | None = None
    started_at: datetime | None = None  # of the running attempt
    heartbeat_at: datetime | None = None  # of the running attempt
    queued_at: datetime | None = None  # when the queued attempt was last published
    first_queued_at: datetime | None = None  # when the queued attempt was committed
    worker_id: str | None = None  # who claimed the running attempt
    pool: str = DEFAULT_POOL
    pool_slots: int = 1


@dataclass(frozen=True)
class RunSnap:
    pk: int
    dag_id: str
    state: RunState
    tis: Mapping[str, TISnap]
    revision: int = 0  # the run's revision when its task instances were read
    past: Mapping[str, TaskState] = field(default_factory=dict)
    """The states, in the DAG's run created before this one, of its depends_on_past tasks (a
    task missing here had no task instance there, or there is no run before)."""
    code_hash: str | None = None
    """The DAG's code version the run was created with: its tasks are that version's."""


@dataclass(frozen=True)
class Snapshot:
    """The unfinished runs, read after `metastore_now`: the metastore's clock at the start of
    the read, so a heartbeat's age computed from it is never overstated."""

    runs: list[RunSnap]
    metastore_now: datetime
    pools: Mapping[str, int] | None = None  # every pool -> its slots, read with the runs
    backfills: list[BackfillSnap] = field(default_factory=list)  # the running ones


@dataclass(frozen=True)
class Limits:
    """What bounds one plan: free slots, and the liveness policy with its observations
    (see `haflow.core.reclamation` for how they decide a reclaim)."""

    open_slots: int  # how many more attempts the executor may hold
    worker_timeout_s: float = 8.0  # a running attempt silent this long is lost
    queued_timeout_s: float = 30.0  # a queued attempt unclaimed this long is re-published
    timeout_grace_s: float = 5.0  # the worker enforces timeouts; this is the backstop
    reclaim_consumes_retry: bool = False
    max_losses: int = 3  # a task that keeps killing its worker fails after this many losses
    gone_workers: frozenset[str] = frozenset()  # workers whose ZooKeeper node vanished (a hint)
    self_fence_s: float = 6.0  # a worker stops an attempt it could not heartbeat for this long
    reclaim_margin_s: float = 1.0  # past the self-fence point, the soonest a reclaim may come
    metastore_now: datetime | None = None  # the metastore's clock when the snapshot was read
    pools: Mapping[str, int] | None = None  # pool -> slots; None: pools are not enforced


@dataclass(frozen=True)
class NewRun:
    dag_id: str
    fire_at: datetime
    interval_start: datetime
    interval_end: datetime
    backfill_id: int | None = None  # a backfill's run, not the schedule's


@dataclass(frozen=True)
class BackfillSnap:
    """A running backfill as the planner sees it: its range and cap, the fire times (interval
    ends) of the DAG's runs already there from its range on, and how many runs of its range
    are unfinished (its own and the others: the schedule's, or one --reset-existing cleared)."""

    id: int
    dag_id: str
    start: datetime
    end: datetime
    max_active_runs: int
    existing: frozenset[datetime] = frozenset()
    active: int = 0


@dataclass(frozen=True)
class TIChange:
    """Move a task instance from `expected` (at `attempt`) to `state`; applied conditionally."""

    ti_id: int
    attempt: int
    expected: TaskState
    state: TaskState
    failures: int | None = None
    losses: int | None = None
    next_try_at: datetime | None = None
    attempt_state: str | None = None  # also close the attempt row with this state
    reason: str = ""


@dataclass
class Decisions:
    new_runs: list[NewRun] = field(default_factory=list)
    start_runs: list[int] = field(default_factory=list)
    finish_runs: list[tuple[int, RunState]] = field(default_factory=list)
    to_queue: list[tuple[int, int]] = field(default_factory=list)  # (ti_id, new attempt)
    changes: list[TIChange] = field(default_factory=list)
    republish: list[tuple[int, int]] = field(default_factory=list)  # (ti_id, attempt)
    revisions: dict[int, int] = field(default_factory=dict)
    """run pk -> the revision its decisions were planned from; applying them fails if a run
    changed since (a clear), so nothing is decided on task instances no longer there."""
    finish_backfills: list[int] = field(default_factory=list)
    capped: bool = False
    """Something in `to_queue` takes slots of a pool with a cap: the transaction that queues
    checks the pools again (a plan into uncapped pools alone skips that query)."""
    broken: dict[str, str] = field(default_factory=dict)
    """DAG id -> why planning that DAG raised; its part is left out of every other field."""

    def __bool__(self) -> bool:
        return any(
            (
                self.new_runs,
                self.finish_backfills,
                self.start_runs,
                self.finish_runs,
                self.to_queue,
                self.changes,
                self.republish,
            )
        )
