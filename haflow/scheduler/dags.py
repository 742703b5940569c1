"""The scheduler's view of the DAGs folder: parsed DAGs turned into planner specs and records."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from haflow.core.planner import DagSpec, TaskSpec
from haflow.dag.dag import DAG
from haflow.dag.loader import DagBag, DagCache
from haflow.metastore.records import DagRecord, DagRow, TaskDef


class DagRegistry:
    """Re-parses changed DAG files at most every `interval_s`; keeps the last good parse."""

    def __init__(
        self, folder: Path, interval_s: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.cache = DagCache(folder)
        self.interval_s = interval_s
        self.monotonic = monotonic
        self.bag = DagBag(dags={}, import_errors=[], files={})
        self._last = float("-inf")
        # derived once per parse, not per tick: a 1,000-task DAG costs milliseconds to walk
        self._tasks: dict[str, dict[str, TaskSpec]] = {}
        self._defs: dict[str, list[TaskDef]] = {}

    def due(self) -> bool:
        return self.monotonic() - self._last >= self.interval_s

    def refresh(self) -> DagBag:
        bag = self.cache.refresh()
        self._last = self.monotonic()
        if bag.dags != self.bag.dags or bag.import_errors != self.bag.import_errors:
            self.bag = bag
            self._tasks = {dag_id: _task_specs(d) for dag_id, d in bag.dags.items()}
            self._defs = {dag_id: _task_defs(d) for dag_id, d in bag.dags.items()}
        return self.bag

    def records(self) -> list[DagRecord]:
        return [_record(d) for d in self.bag.dags.values()]

    def errors(self) -> list[tuple[str, int | None, str]]:
        return [(e.file, e.line, e.message) for e in self.bag.import_errors]

    def specs(self, rows: Mapping[str, DagRow]) -> dict[str, DagSpec]:
        out = {}
        for dag_id, dag in self.bag.dags.items():
            row = rows.get(dag_id)
            if row is not None:
                out[dag_id] = _spec(dag, self._tasks[dag_id], row)
        return out

    def task_defs(self) -> dict[str, list[TaskDef]]:
        return self._defs


def _record(dag: DAG) -> DagRecord:
    return DagRecord(
        dag_id=dag.dag_id,
        fileloc=str(dag.fileloc),
        schedule=dag.schedule,
        start_date=dag.start_date,
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        tags=list(dag.tags),
        description=dag.description,
        fingerprint=dag.fingerprint(),
        structure=dag.structure(),
    )


def _task_specs(dag: DAG) -> dict[str, TaskSpec]:
    return {
        tid: TaskSpec(tid, frozenset(t.upstream_task_ids), t.trigger_rule)
        for tid, t in dag.tasks.items()
    }


def _spec(dag: DAG, tasks: dict[str, TaskSpec], row: DagRow) -> DagSpec:
    return DagSpec(
        dag_id=dag.dag_id,
        tasks=tasks,
        schedule=dag.schedule_obj,
        start_date=dag.start_date,
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        is_paused=row.is_paused,
        last_fire_at=row.last_fire_at,
    )


def _task_defs(dag: DAG) -> list[TaskDef]:
    return [
        TaskDef(
            task_id=t.task_id,
            retries=t.retries,
            retry_delay_s=t.retry_delay.total_seconds(),
            timeout_s=None if t.execution_timeout is None else t.execution_timeout.total_seconds(),
            queue=t.queue,
        )
        for t in (dag.tasks[tid] for tid in dag.topological_order())
    ]
