"""The scheduler's view of the DAGs folder: the processor's latest parses as planner specs and
metastore records. Reading it never waits for a parse (`haflow.scheduler.parsing`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from haflow.core.planner import DagSpec
from haflow.dag.loader import ImportErrorRecord
from haflow.metastore.records import DagCode, DagFlags, DagRecord, TaskDef
from haflow.scheduler.parsing import DagFileProcessor, FolderView, ParsedDag


class DagRegistry:
    """The DAGs of the processor's last results; `refresh` takes the newest ones (cheap)."""

    def __init__(
        self, processor: DagFileProcessor, cluster_rules: Sequence[dict[str, Any]] = ()
    ) -> None:
        self.processor = processor
        self.cluster_rules = list(cluster_rules)  # [notifications] rules, added to every DAG's
        self.dags: dict[str, ParsedDag] = {}
        self.import_errors: list[ImportErrorRecord] = []
        self.pending: tuple[str, ...] = ()
        self._seen = -1
        self._defs: dict[str, list[TaskDef]] = {}
        self._code: dict[str, DagCode] = {}
        self._past: dict[str, list[str]] = {}

    name = "DAG file processor"

    def start(self) -> None:
        self.processor.start()

    def stop(self) -> None:
        self.processor.stop()

    def healthy(self) -> bool:
        return self.processor.healthy()

    def changed(self) -> bool:
        """Whether the processor has results this registry has not taken yet."""
        return self.processor.generation != self._seen

    def refresh(self) -> None:
        view = self.processor.view()
        self._seen = view.generation
        self.dags, self.import_errors = _assemble(view)
        self._code = {c.hash: c for c in view.code.values()}
        self.pending = view.pending
        # derived once per parse, not per tick: the loop passes these on every apply
        self._defs = {dag_id: d.defs for dag_id, d in self.dags.items()}
        past = {
            d: [t.task_id for t in p.tasks.values() if t.depends_on_past]
            for d, p in self.dags.items()
        }
        self._past = {dag_id: tasks for dag_id, tasks in past.items() if tasks}

    def records(self) -> list[DagRecord]:
        if not self.cluster_rules:
            return [d.record for d in self.dags.values()]
        return [
            dataclasses.replace(d.record, notify=[*d.record.notify, *self.cluster_rules])
            for d in self.dags.values()
        ]

    def code(self) -> dict[str, DagCode]:
        """The code versions of the files parsed (by hash), for the DAGs `records` names."""
        return self._code

    def errors(self) -> list[tuple[str, int | None, str]]:
        return [(e.file, e.line, e.message) for e in self.import_errors]

    def specs(self, rows: Mapping[str, DagFlags]) -> dict[str, DagSpec]:
        out = {}
        for dag_id, dag in self.dags.items():
            row = rows.get(dag_id)
            if row is not None:
                out[dag_id] = _spec(dag, row)
        return out

    def task_defs(self) -> dict[str, list[TaskDef]]:
        return self._defs

    def past_tasks(self) -> dict[str, list[str]]:
        """DAG id -> its depends_on_past tasks, for the DAGs that have any."""
        return self._past


def _assemble(view: FolderView) -> tuple[dict[str, ParsedDag], list[ImportErrorRecord]]:
    """Every file's DAGs (its last good parse when the newest failed) and errors, in path
    order; a DAG id belongs to the first file that defines it."""
    dags: dict[str, ParsedDag] = {}
    errors: list[ImportErrorRecord] = []
    owners: dict[str, str] = {}
    for path in sorted(view.files):
        result = view.results.get(path)
        if result is not None and result.error is not None:
            errors.append(result.error)
        for dag in view.good.get(path, ()):
            first = owners.setdefault(dag.dag_id, path)
            if first == path:
                dags[dag.dag_id] = dag
                continue
            message = (
                f"DagDefinitionError: DAG id {dag.dag_id!r} is defined in both {first} and "
                f"{path}; the one in {first} is kept, rename the other"
            )
            errors.append(ImportErrorRecord(path, None, message))
    return dags, errors


def _spec(dag: ParsedDag, row: DagFlags) -> DagSpec:
    r = dag.record
    return DagSpec(
        dag_id=r.dag_id,
        tasks=dag.tasks,
        schedule=dag.schedule,
        start_date=r.start_date,
        end_date=r.end_date,
        catchup=r.catchup,
        max_active_runs=r.max_active_runs,
        max_active_tasks=dag.max_active_tasks,
        is_paused=row.is_paused,
        last_fire_at=row.last_fire_at,
    )
