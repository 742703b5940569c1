"""The scheduler's view of the DAGs: the processor's latest parses as metastore records, and
planner specs of the code versions the metastore names. Reading it never waits for a parse
(`haflow.scheduler.parsing`).

What is scheduled follows the metastore, not this master's folder: each DAG is planned with
its version now (`dag.code_hash`), each run with the version it was created with. A version
this master's folder does not hold (another master parsed it, or `haflow dags push` stored
it) is fetched, unpacked into the code cache and parsed like a file of the folder; until that
parse is in, its DAG or run waits."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from haflow.core.planner import DagSpec, RunSnap, TaskSpec
from haflow.dag import bundle
from haflow.dag.loader import ImportErrorRecord
from haflow.errors import HaflowError
from haflow.metastore.records import DagCode, DagFlags, DagRecord, Presence, TaskDef
from haflow.scheduler.folder_changes import FolderChanges
from haflow.scheduler.parsing import DagFileProcessor, FolderView, ParsedDag

log = logging.getLogger(__name__)
_FETCH_RETRY_S = 30.0


class DagRegistry:
    """The DAGs of the processor's last results; `refresh` takes the newest ones (cheap).
    `fetch_code` reads a code version from the metastore and `cache` is where it is unpacked
    (without them, only the versions this master's folder holds are known)."""

    def __init__(
        self,
        processor: DagFileProcessor,
        cluster_rules: Sequence[dict[str, Any]] = (),
        *,
        fetch_code: Callable[[str], DagCode] | None = None,
        cache: Path | None = None,
        node: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processor = processor
        self.changes = FolderChanges(node)
        self.fetch_code = fetch_code
        self.cache = cache
        self.monotonic = monotonic
        self.versions: dict[tuple[str, str], ParsedDag] = {}  # (DAG id, hash) -> its parse
        self._fetch_failed: dict[str, float] = {}
        self._unpacked: dict[str, tuple[str, str]] = {}  # hash -> its DAG file and folder
        self.cluster_rules = list(cluster_rules)  # [notifications] rules, added to every DAG's
        self.dags: dict[str, ParsedDag] = {}
        self.import_errors: list[ImportErrorRecord] = []
        self.pending: tuple[str, ...] = ()
        self._seen = -1
        self._defs: dict[str, list[TaskDef]] = {}
        self._code: dict[str, DagCode] = {}
        self._version_defs: dict[tuple[str, str], list[TaskDef]] = {}
        self._version_tasks: dict[tuple[str, str], Mapping[str, TaskSpec]] = {}
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
        self.changes.observe({d: p.record.fileloc for d, p in self.dags.items()}, view)
        self._code = {c.hash: c for c in view.code.values()}
        self.pending = view.pending
        versions = {(d.dag_id, d.record.code_hash): d for d in self.dags.values()}
        for h, parsed in view.versions.items():
            for d in parsed.dags:  # keyed by the hash asked for, whatever the parse computed
                versions[(d.dag_id, h)] = dataclasses.replace(
                    d, record=dataclasses.replace(d.record, code_hash=h)
                )
        self.versions = {k: v for k, v in versions.items() if k[1]}
        # derived once per parse, not per tick: the loop passes these on every apply
        self._version_defs = {k: d.defs for k, d in self.versions.items()}
        self._version_tasks = {k: d.tasks for k, d in self.versions.items()}
        past: dict[str, set[str]] = {}
        for d in [*self.dags.values(), *self.versions.values()]:
            tasks = {t.task_id for t in d.tasks.values() if t.depends_on_past}
            if tasks:
                past.setdefault(d.dag_id, set()).update(tasks)
        self._past = {dag_id: sorted(tasks) for dag_id, tasks in past.items()}

    def records(self) -> list[DagRecord]:
        if not self.cluster_rules:
            return [d.record for d in self.dags.values()]
        return [
            dataclasses.replace(d.record, notify=[*d.record.notify, *self.cluster_rules])
            for d in self.dags.values()
        ]

    def presence(self) -> Presence:
        """What this master saw change in its own folder since the last `synced`."""
        return self.changes.presence()

    def synced(self) -> None:
        """The metastore has what `presence` said."""
        self.changes.synced()

    def code(self) -> dict[str, DagCode]:
        """The code versions of the files parsed (by hash), for the DAGs `records` names."""
        return self._code

    def fingerprints(self) -> dict[str, str]:
        """Each DAG parsed here: its fingerprint (a new parse of a changed DAG differs)."""
        return {d: p.record.fingerprint for d, p in self.dags.items()}

    def errors(self) -> list[tuple[str, int | None, str]]:
        return [(e.file, e.line, e.message) for e in self.import_errors]

    def specs(self, rows: Mapping[str, DagFlags]) -> dict[str, DagSpec]:
        """The active DAGs of the metastore (`rows`) at their version now; one whose version
        is not parsed here yet is left out (asked for: it is there at a later tick)."""
        out = {}
        self._defs = {}
        for dag_id, row in rows.items():
            dag = self._current(dag_id, row)
            if dag is not None:
                out[dag_id] = _spec(dag, row)
                self._defs[dag_id] = dag.defs
        return out

    def _current(self, dag_id: str, row: DagFlags) -> ParsedDag | None:
        if row.code_hash is None:  # written by a scheduler that kept no versions
            return self.dags.get(dag_id)
        found = self.versions.get((dag_id, row.code_hash))
        if found is None:
            self.want([row.code_hash])
        return found

    def run_versions(
        self, runs: Iterable[RunSnap]
    ) -> dict[tuple[str, str], Mapping[str, TaskSpec]]:
        """The tasks of every code version known here (the planner picks each run's); the
        versions of `runs` not known yet are asked for."""
        self.want(
            r.code_hash
            for r in runs
            if r.code_hash is not None and (r.dag_id, r.code_hash) not in self._version_tasks
        )
        return self._version_tasks

    def want(self, hashes: Iterable[str]) -> None:
        """Have the code versions `hashes` parsed here: fetched from the metastore and unpacked
        into the cache once, then asked of the processor (which skips those it has, and tries
        a failed one again after a while)."""
        if self.fetch_code is None or self.cache is None:
            return
        fetch = self.fetch_code
        for h in set(hashes):
            where = self._unpacked.get(h)
            failed = self._fetch_failed.get(h)
            if where is None and failed is not None and self.monotonic() - failed < _FETCH_RETRY_S:
                continue
            if where is None:
                try:
                    folder = bundle.unpacked(self.cache, h, lambda x: fetch(x).packed)
                except (HaflowError, OSError) as exc:
                    log.error("cannot have DAG code version %s here: %s", h[:12], exc)
                    self._fetch_failed[h] = self.monotonic()
                    continue
                self._fetch_failed.pop(h, None)
                where = self._unpacked[h] = (bundle.entry_of(folder), str(folder))
            self.processor.parse_version(h, *where)

    def task_defs(self) -> dict[str, list[TaskDef]]:
        """Each DAG's task definitions at its version now (as of the last `specs`)."""
        return self._defs

    def version_defs(self) -> dict[tuple[str, str], list[TaskDef]]:
        """The task definitions of every version known here, by DAG id and hash."""
        return self._version_defs

    def past_tasks(self) -> dict[str, list[str]]:
        """DAG id -> its depends_on_past tasks (in any version), for the DAGs that have any."""
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
        code_hash=r.code_hash or None,
        is_paused=row.is_paused,
        last_fire_at=row.last_fire_at,
    )
