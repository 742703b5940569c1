"""Pools and concurrency limits: what one plan may still queue.

A pool is a named number of slots; a task instance in flight (queued or running) holds its
`pool_slots` of its pool's. Beside the pools, a DAG may cap its task instances in flight
(`max_active_tasks`) and a task its own across the DAG's runs (`max_active_tis_per_dag`). The
planner counts what is in flight in its snapshot (every in-flight task instance is in it) and
queues only what fits, oldest run first; the leader's transaction checks the pools again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_POOL = "default_pool"
UNLIMITED = -1  # a pool's slots: no cap (as Airflow's -1)
DEFAULT_POOL_SLOTS = UNLIMITED
"""Without a row of its own the default pool caps nothing ([scheduler] max_active_tasks
still caps the cluster); `haflow pools set default_pool N` caps it, as Airflow's 128 does."""


def with_default(pools: Mapping[str, int]) -> dict[str, int]:
    """The pools' slots, the default pool included: it always exists."""
    return {DEFAULT_POOL: DEFAULT_POOL_SLOTS, **pools}


@dataclass
class Budget:
    """What may still be queued in this plan: open pool slots, and task instances in flight
    per DAG and per (DAG, task), against their caps. Unknown pools have no slots."""

    pool_slots: Mapping[str, int] | None  # pool -> its slots; None: pools are not enforced
    used: Counter[str] = field(default_factory=Counter)
    per_dag: Counter[str] = field(default_factory=Counter)
    per_task: Counter[tuple[str, str]] = field(default_factory=Counter)

    def hold(self, dag_id: str, task_id: str, pool: str, slots: int) -> None:
        """Count one task instance in flight."""
        self.used[pool] += slots
        self.per_dag[dag_id] += 1
        self.per_task[(dag_id, task_id)] += 1

    def capped(self, pool: str) -> bool:
        """Whether `pool` has a cap (an unknown pool counts as capped: it has no slots)."""
        return self.pool_slots is not None and self.pool_slots.get(pool, 0) != UNLIMITED

    def open(self, pool: str) -> int:
        slots = 1 << 30 if self.pool_slots is None else self.pool_slots.get(pool, 0)
        return 1 << 30 if slots == UNLIMITED else slots - self.used[pool]

    def fits(
        self,
        dag_id: str,
        task_id: str,
        pool: str,
        slots: int,
        dag_cap: int | None,
        task_cap: int | None,
    ) -> bool:
        if self.open(pool) < slots:
            return False
        if dag_cap is not None and self.per_dag[dag_id] >= dag_cap:
            return False
        return task_cap is None or self.per_task[(dag_id, task_id)] < task_cap


def unfit(pool: str, slots: int, pool_slots: Mapping[str, int] | None) -> str | None:
    """Why a task instance can never be queued in `pool` (it does not exist, or has fewer
    slots than the task needs), None when it can."""
    if pool_slots is None:
        return None
    if pool not in pool_slots:
        return f"pool {pool!r} does not exist; create it with `haflow pools set {pool} SLOTS`"
    if pool_slots[pool] != UNLIMITED and slots > pool_slots[pool]:
        return f"the task needs {slots} slots of pool {pool!r}, which has {pool_slots[pool]}"
    return None
