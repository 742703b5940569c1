"""The recorded history of a chaos run as plain data: what the checker judges, and nothing else.

Every field comes from a record made while the run happened (the metastore's event log and
attempt rows, the tasks' own records on their nodes, the fault log, request results through
haproxy), never from a daemon's own claim about itself. No IO here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WORKER_EVENT_KINDS = frozenset({"attempt.claimed", "attempt.claim_rejected", "report.rejected"})
"""Events written by workers: they carry the epoch of the message, not a leader's write."""

UNFENCED_EVENT_KINDS = frozenset({"leader.fenced_out"})
"""Events that record a rejected write; written outside any epoch's fence."""

OBSERVE = "observe"
"""The action of a fault-log line that records what the harness saw of a node (for instance a
paused scheduler frozen inside a fenced transaction): no fault, no change of the node's state."""


@dataclass(frozen=True)
class Event:
    """One row of the metastore's event log; `id` is the commit order of fenced writes."""

    id: int
    ts: datetime
    kind: str
    actor: str
    epoch: int | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    attempt: int | None = None
    detail: str = ""
    committed_at: datetime | None = None
    """When the server committed the row (PostgreSQL's commit timestamp), if recorded. `ts` is
    the writer's clock when it began the transaction, which can be much earlier when the
    transaction waited on a lock."""

    @property
    def at(self) -> datetime:
        """When the event took effect: its commit time when known, else its own timestamp."""
        return self.committed_at if self.committed_at is not None else self.ts

    @property
    def node(self) -> str:
        """The node of the actor: scheduler ids are `host:pid:nonce`, worker ids their host."""
        return self.actor.split(":", 1)[0]

    def detail_dict(self) -> dict[str, Any]:
        try:
            value = json.loads(self.detail) if self.detail else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def is_scheduler_write(self) -> bool:
        """A state change accepted under a leader's epoch (checked in its transaction)."""
        return (
            self.epoch is not None
            and self.kind not in WORKER_EVENT_KINDS
            and self.kind not in UNFENCED_EVENT_KINDS
        )


@dataclass(frozen=True)
class Attempt:
    """One row of task_attempt: a numbered try of a task instance."""

    dag_id: str
    run_id: str
    task_id: str
    attempt: int
    state: str
    epoch: int
    worker_id: str | None
    queued_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str = ""
    pool: str = "default_pool"
    pool_slots: int = 1

    @property
    def ti(self) -> tuple[str, str, str]:
        return (self.dag_id, self.run_id, self.task_id)


@dataclass(frozen=True)
class Run:
    """One row of dag_run."""

    dag_id: str
    run_id: str
    run_type: str
    state: str
    created_at: datetime
    scheduled_fire_at: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    code_hash: str | None = None  # the code version it was created with


@dataclass(frozen=True)
class TaskRecord:
    """What a workload task wrote about itself on its own node: `start`, `tick` (while it
    runs, every fraction of a second) or `end`, with its attempt and the node's clock."""

    dag_id: str
    run_id: str
    task_id: str
    attempt: int
    node: str
    kind: str
    ts: datetime
    code_hash: str = ""  # the code version the task ran ("" from older records)

    @property
    def ti(self) -> tuple[str, str, str]:
        return (self.dag_id, self.run_id, self.task_id)


@dataclass(frozen=True)
class Fault:
    """One line of the cluster's fault log: `action` (kill, pause, resume, partition, heal,
    restart, stop, start) on `node` at `ts`; `detail` holds e.g. the signal or the peers."""

    ts: datetime
    action: str
    node: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def signal(self) -> str:
        return str(self.detail.get("signal", "KILL"))


@dataclass(frozen=True)
class Request:
    """One HTTP request sent through haproxy by the workload's prober: sent at `ts`, answered
    (or given up) `took_s` later."""

    ts: datetime
    ok: bool
    status: int | None = None
    error: str = ""
    took_s: float = 0.0


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery the cluster's receiver node recorded: the idempotency key, the
    event it notified (the attempt of a task instance's, the revision of a run's) and when it
    arrived, by the receiver's clock."""

    key: str
    event: str
    dag_id: str
    run_id: str
    task_id: str | None
    attempt: int | None
    revision: int | None
    ts: datetime


@dataclass(frozen=True)
class History:
    """Everything recorded during one chaos run. `nodes` maps node name to role
    (master, worker, zookeeper, postgres, broker, lb); `due` maps a cron DAG to the times
    its runs fell due during the observed window (computed from its schedule)."""

    events: tuple[Event, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    runs: tuple[Run, ...] = ()
    records: tuple[TaskRecord, ...] = ()
    faults: tuple[Fault, ...] = ()
    requests: tuple[Request, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    nodes: dict[str, str] = field(default_factory=dict)
    due: dict[str, tuple[datetime, ...]] = field(default_factory=dict)
    pools: dict[str, int] = field(default_factory=dict)  # pool -> slots (-1: no cap)

    def nodes_of(self, role: str) -> list[str]:
        return sorted(n for n, r in self.nodes.items() if r == role)
