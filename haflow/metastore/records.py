"""Plain records the repository hands out and takes in; no SQLAlchemy objects leak past it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from haflow.core.attempt_end import Ending
from haflow.core.pools import DEFAULT_POOL, UNLIMITED
from haflow.core.secrets import is_sensitive
from haflow.core.snapshot import BackfillSnap, TISnap
from haflow.core.states import RunState, TaskState


@dataclass(frozen=True)
class DagRecord:
    """A parsed DAG as the scheduler writes it into the `dag` table."""

    dag_id: str
    fileloc: str
    schedule: str | None
    start_date: datetime | None
    catchup: bool
    max_active_runs: int
    tags: list[str]
    description: str
    fingerprint: str
    structure: dict[str, Any] = field(default_factory=dict)
    notify: list[dict[str, Any]] = field(default_factory=list)  # haflow.dag.notifiers rules
    timezone: str = "UTC"  # of the cron schedule's wall clock
    end_date: datetime | None = None  # no run for an interval that ends after it
    code_hash: str = ""  # its file's code version (haflow.dag.bundle); "" if not known


@dataclass(frozen=True)
class Presence:
    """What a master knows of its own DAGs folder's changes (`DagQueries.sync`): its name
    (`[core] hostname`), the DAGs it saw appear in or vanish from its folder since its last
    sync; `whole`: its folder is the whole truth (a single scheduler, tests)."""

    node: str = ""
    appeared: frozenset[str] = frozenset()
    vanished: frozenset[str] = frozenset()
    whole: bool = False

    def may_change(self, dag_id: str, from_here: bool, code_hash: str | None) -> bool:
        """Whether this master may make DAG `dag_id` active or inactive."""
        if self.whole or code_hash is None or from_here:
            return True
        return dag_id in self.appeared or dag_id in self.vanished


@dataclass(frozen=True)
class DagCode:
    """One code version of a DAG file (`haflow.dag.bundle`): its hash, the DAG file's path in
    it, its unpacked size and the packed bundle."""

    hash: str
    entry: str
    size: int
    packed: bytes = field(repr=False)


@dataclass(frozen=True)
class DagVersionRow:
    """A code version a DAG has had: since when, how many runs use it, whether it is the
    DAG's version now."""

    dag_id: str
    code_hash: str
    entry: str
    size: int
    created_at: datetime
    runs: int
    current: bool


@dataclass(frozen=True)
class DagRow:
    dag_id: str
    fileloc: str
    schedule: str | None
    is_paused: bool
    is_active: bool
    max_active_runs: int
    last_fire_at: datetime | None
    tags: list[str]
    timezone: str = "UTC"
    code_hash: str | None = None  # its code version now: what new runs are created with


@dataclass(frozen=True)
class TaskDef:
    """What a new task instance copies from its task's definition."""

    task_id: str
    retries: int
    retry_delay_s: float
    timeout_s: float | None
    queue: str
    retry_backoff_cap_s: float | None = None
    pool: str = DEFAULT_POOL
    pool_slots: int = 1


@dataclass(frozen=True)
class RunRow:
    pk: int
    dag_id: str
    run_id: str
    run_type: str
    state: str
    conf: dict[str, Any]
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    code_hash: str | None = None  # the code version its attempts run (None: made before)


@dataclass(frozen=True)
class TIRow:
    id: int
    dag_id: str
    run_id: str
    task_id: str
    state: str
    attempt: int
    failures: int
    retries: int
    worker_id: str | None
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    pool: str = DEFAULT_POOL
    pool_slots: int = 1


@dataclass(frozen=True)
class AttemptRow:
    ti_id: int
    attempt: int
    state: str
    epoch: int
    worker_id: str | None
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str
    result: str | None = None  # JSON text, for an attempt that succeeded with a result


@dataclass(frozen=True)
class VariableRow:
    """A variable, its value decrypted."""

    key: str
    value: str = field(repr=False)
    description: str
    updated_at: datetime

    @property
    def sensitive(self) -> bool:
        return is_sensitive(self.key)


@dataclass(frozen=True)
class PoolRow:
    """A pool and the slots its task instances in flight hold."""

    name: str
    slots: int
    description: str
    queued: int  # slots held by queued task instances
    running: int  # slots held by running ones

    @property
    def occupied(self) -> int:
        return self.queued + self.running

    @property
    def unlimited(self) -> bool:
        return self.slots == UNLIMITED

    @property
    def open(self) -> int:
        """Slots free now; UNLIMITED (-1) for a pool without a cap."""
        return UNLIMITED if self.unlimited else self.slots - self.occupied


@dataclass(frozen=True)
class BackfillRow:
    """A backfill and how far its range got: the runs of its intervals (whoever made them)
    that succeeded, failed or are unfinished, and how many it created itself."""

    id: int
    dag_id: str
    start: datetime
    end: datetime
    intervals: int
    max_active_runs: int
    reset_existing: bool
    state: str  # running, done
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    runs_created: int = 0
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


def result_of(t: TIRow, attempts: Sequence[AttemptRow]) -> str | None:
    """Task instance `t`'s result (JSON text): the one of the attempt it succeeded with, if
    it returned one."""
    if t.state != "success":
        return None
    return next((a.result for a in attempts if a.attempt == t.attempt), None)


@dataclass(frozen=True)
class AttemptRef:
    """The message that hands an attempt to an executor: enough to claim it, nothing more."""

    ti_id: int
    attempt: int
    epoch: int
    queue: str = "default"


@dataclass(frozen=True)
class AttemptReport:
    """A worker's report of one attempt's end (`attempts.finish_many`): how it ended, why,
    when, and the rest of its log."""

    ti_id: int
    attempt: int
    ending: Ending
    reason: str
    now: datetime
    log: str = ""
    result: str | None = None  # what a successful attempt returned, as JSON text
    poke_at: datetime | None = None  # rescheduled: when to poke again
    sensing_since: datetime | None = None  # rescheduled: when the sensor's first poke began


@dataclass(frozen=True)
class ClaimedAttempt:
    """What a worker learns when its claim succeeds: what to run and with which context."""

    ti_id: int
    attempt: int
    dag_id: str
    run_id: str
    task_id: str
    fileloc: str
    timeout_s: float | None
    conf: dict[str, Any] = field(default_factory=dict)
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    results: dict[str, str] = field(default_factory=dict)
    """The results of the run's tasks that succeeded with one: task id -> JSON text."""
    sensing_since: datetime | None = None
    """A sensor rescheduled before: when its first poke began."""
    code_hash: str | None = None
    """The code version its run was created with (`haflow.dag.bundle`); None for a run made
    before versions were kept: then the worker's DAGs folder has the file."""


@dataclass(frozen=True)
class EventRow:
    id: int
    ts: datetime
    kind: str
    actor: str
    epoch: int | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    attempt: int | None
    detail: str


@dataclass(frozen=True)
class LeaderRow:
    cluster: str
    epoch: int
    holder: str
    elector_mode: str
    acquired_at: datetime
    renewed_at: datetime


@dataclass(frozen=True)
class ImportErrorRow:
    fileloc: str
    line: int | None
    message: str
    ts: datetime


@dataclass(frozen=True)
class DagDetail:
    """A DAG as the web shows it: its row plus what the scheduler parsed of its structure."""

    dag_id: str
    fileloc: str
    schedule: str | None
    is_paused: bool
    is_active: bool
    max_active_runs: int
    catchup: bool
    start_date: datetime | None
    last_fire_at: datetime | None
    parsed_at: datetime | None
    tags: list[str]
    description: str
    structure: dict[str, Any]
    timezone: str = "UTC"
    end_date: datetime | None = None


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    role: str
    password_hash: str = field(repr=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class TokenRow:
    id: int
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class WebserverRow:
    id: str
    hostname: str
    pid: int
    port: int
    secret_fingerprint: str
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True)
class DagFlags:
    """What the leader reads of every active DAG at each tick: whether it is paused, and
    the fire time of its newest scheduled run."""

    dag_id: str
    is_paused: bool
    last_fire_at: datetime | None
    code_hash: str | None = None  # its code version now: what its new runs run


@dataclass(frozen=True)
class RunHead:
    """An unfinished run as listed at every tick: its revision says whether the task
    instances the leader holds of it are still the metastore's."""

    pk: int
    dag_id: str
    state: RunState
    revision: int
    code_hash: str | None = None  # the code version it was created with


@dataclass(frozen=True)
class Delta:
    """What one read of the metastore returned to a leader that keeps its snapshot between
    ticks: every unfinished run, the task instances of the runs read whole, and the task
    instances read again one by one (in flight now, or asked for)."""

    metastore_now: datetime
    runs: list[RunHead]
    whole: Mapping[int, dict[str, TISnap]]  # run pk -> every task instance of the run
    tis: list[tuple[int, TISnap]]  # (run pk, task instance)
    dags: list[DagFlags]  # every active DAG's state, read in the same look
    past: Mapping[int, dict[str, TaskState]] = field(default_factory=dict)
    """Running run pk -> the states of the asked tasks in its DAG's run created before it."""
    pools: Mapping[str, int] = field(default_factory=dict)  # every pool -> its slots
    backfills: list[BackfillSnap] = field(default_factory=list)  # the running ones


@dataclass(frozen=True)
class NotificationRow:
    """One notification of the outbox; `tries` counts its claims (deliveries begun)."""

    id: int
    key: str
    event: str
    dag_id: str
    run_id: str
    task_id: str | None
    attempt: int | None
    target: dict[str, Any]
    payload: dict[str, Any]
    state: str
    tries: int
    claim_epoch: int | None
    error: str
    created_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class LogPage:
    """The log of an attempt written after `cursor` was read: `content`, the cursor to ask
    from next time, and whether the attempt had ended before this read (then `content` holds
    everything up to its end)."""

    content: str
    cursor: int
    ended: bool


@dataclass(frozen=True)
class FinishedRun:
    """A run the leader's apply ended (for per-DAG metrics)."""

    dag_id: str
    run_id: str
    state: str
    started_at: datetime | None
    ended_at: datetime


@dataclass(frozen=True)
class Applied:
    """What one fenced apply committed that others act on: the attempts to publish, the runs
    it ended."""

    refs: list[AttemptRef]
    finished: list[FinishedRun]
