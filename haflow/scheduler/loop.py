"""One scheduling iteration: snapshot, plan, apply (fenced), publish.

`now` is read from the clock after every step that can block (a metastore call), so what an
iteration records is never stamped earlier than what it read: a run triggered while the
snapshot was taken is never started "before" it was triggered. DAG files are parsed elsewhere
(`haflow.scheduler.parsing`); the loop only takes the newest parses, never waits for one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from haflow.core.clock import Clock, utcnow
from haflow.core.isolation import Broken, Quarantine, split_by_dag
from haflow.core.planner import Decisions, Limits, RunSnap, plan
from haflow.core.snapshot import Snapshot
from haflow.core.states import IN_FLIGHT_TASK_STATES
from haflow.errors import ConcurrentChange, MetastoreError, SchemaOutOfDate
from haflow.executors.base import Executor
from haflow.metastore.records import Applied
from haflow.metastore.repository import Repository
from haflow.scheduler.dags import DagRegistry
from haflow.scheduler.listener import NO_LISTENER, SchedulerListener
from haflow.scheduler.view import LeaderView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    worker_timeout_s: float = 8.0
    self_fence_s: float = 6.0  # the workers' self-fence window (WorkerSettings.self_fence_s)
    reclaim_margin_s: float = 1.0
    queued_timeout_s: float = 30.0
    timeout_grace_s: float = 5.0
    reclaim_consumes_retry: bool = False
    max_losses: int = 3
    max_active_tasks: int = 1024
    broken_retry_s: float = 60.0  # a DAG set aside as broken is tried again after this


class SchedulingLoop:
    """The leader's work. Every write goes through `repo` under `epoch`; FencedOut propagates."""

    def __init__(
        self,
        repo: Repository,
        executor: Executor,
        registry: DagRegistry,
        cfg: LoopConfig,
        worker_watch: Any = None,
        listener: SchedulerListener = NO_LISTENER,
        clock: Clock = utcnow,
    ) -> None:
        self.worker_watch = worker_watch  # ZooKeeper's view of dead workers, or None
        self.listener = listener  # told what each iteration committed (metrics)
        self.repo = repo
        self.executor = executor
        self.registry = registry
        self.cfg = cfg
        self.clock = clock
        self.view = LeaderView(repo)  # the snapshot kept between ticks
        self.quarantine = Quarantine(cfg.broken_retry_s)  # DAGs whose data the metastore refused
        self._shown: set[str] = set()  # the broken DAGs the last sync wrote as import errors

    def tick(self, epoch: int) -> bool:
        """Run one iteration; True when it changed something (so the next one should follow)."""
        try:
            return self._tick(epoch)
        except ConcurrentChange as exc:  # planned on rows that changed meanwhile: plan again
            self.view.reset()
            log.warning("planning again from a whole snapshot: %s", exc)
            return True
        except BaseException:
            self.view.reset()  # what the failed tick wrote, or did not, is unknown
            raise

    def _tick(self, epoch: int) -> bool:
        if self.registry.changed():
            self.sync_dags(epoch)
        snap, dag_rows = self.view.snapshot(self.registry.past_tasks())
        held = self._held()
        if held != self._shown:
            self.sync_dags(epoch)
        specs = self.registry.specs({d.dag_id: d for d in dag_rows if d.dag_id not in held})
        versions = self.registry.run_versions(snap.runs)
        now = self.clock()
        limits = self._limits(_active(snap.runs), snap.metastore_now, snap.pools)
        decisions = plan(specs, snap.runs, now, limits, snap.backfills, versions)
        for dag_id, why in decisions.broken.items():
            self._set_aside(dag_id, why, now)
        if not decisions:
            return False
        applied = self._apply(decisions, snap, epoch, now)
        if applied.refs:
            self.executor.submit(applied.refs)
        self.listener.applied(decisions, applied.refs, now)
        if applied.finished:
            self.listener.runs_finished(applied.finished)
        return _follows(decisions)

    def _apply(self, d: Decisions, snap: Snapshot, epoch: int, now: datetime) -> Applied:
        """Apply `d` in one transaction; should the metastore refuse it for its data, apply it
        again DAG by DAG and set aside each DAG whose own part is refused (haflow.core.
        isolation): one DAG's values never stop the others, nor this scheduler."""
        args = (self.registry.task_defs(), epoch, now, self.registry.version_defs())
        try:
            applied = self.repo.scheduling.apply(d, *args)
        except (ConcurrentChange, SchemaOutOfDate):
            raise
        except MetastoreError as exc:
            log.warning("the metastore refused this tick's writes; DAG by DAG now: %s", exc)
        else:
            self.view.touched(d)
            return applied
        self.view.reset()  # some parts commit, some do not: read everything again
        out = Applied([], [])
        for dag_id, part in split_by_dag(d, snap.runs, snap.backfills).items():
            try:
                one = self.repo.scheduling.apply(part, *args)
            except (ConcurrentChange, SchemaOutOfDate):
                raise
            except MetastoreError as exc:
                self._set_aside(dag_id, str(exc), now)
                continue
            out.refs.extend(one.refs)
            out.finished.extend(one.finished)
        return out

    def _held(self) -> set[str]:
        """The DAGs set aside now (none, without a pass over the DAGs, while none is)."""
        if not self.quarantine.broken:
            return set()
        return self.quarantine.held(self.clock(), self.registry.fingerprints())

    def _set_aside(self, dag_id: str, why: str, now: datetime) -> None:
        """Set `dag_id` aside for `why` (once: its in-flight attempts' supervision may be
        refused again at every tick until it is tried again, with no new event)."""
        if dag_id in self.quarantine.broken:
            return
        log.error("DAG %s set aside as broken: %s", dag_id, why)
        parsed = self.registry.dags.get(dag_id)
        cause = why[:500]
        self.quarantine.add(
            Broken(
                dag_id,
                parsed.record.fileloc if parsed is not None else f"<DAG {dag_id}>",
                cause,
                now,
                parsed.record.fingerprint if parsed is not None else "",
            )
        )
        self.repo.record_event("dag.broken", now, dag_id=dag_id, detail={"error": cause})

    def sync_dags(self, epoch: int) -> None:
        """Write the newest parses, with the DAGs set aside as broken among the import
        errors; DAGs of files not parsed yet by this process stay as the metastore has them."""
        self.registry.refresh()
        shown = set(self.quarantine.broken)
        refused = self.repo.dags.sync(
            self.registry.records(),
            self.registry.errors() + self.quarantine.errors(),
            self.clock(),
            epoch,
            pending_files=self.registry.pending,
            code=self.registry.code(),
            presence=self.registry.presence(),
        )
        self.registry.synced()
        self._shown = shown
        for dag_id, why in refused.items():  # shown among the import errors at the next sync
            self._set_aside(dag_id, why, self.clock())

    def take_over(self, epoch: int) -> None:
        """On becoming leader: forget any earlier view, write the newest parses, then
        re-publish every attempt an earlier leader queued."""
        self.view.reset()
        self.sync_dags(epoch)
        refs = self.repo.scheduling.republish_queued(epoch, self.clock())
        if refs:
            self.executor.submit(refs)

    def _limits(
        self, active: int, metastore_now: datetime, pools: Mapping[str, int] | None
    ) -> Limits:
        return Limits(
            open_slots=min(self.executor.open_slots(), self.cfg.max_active_tasks - active),
            worker_timeout_s=self.cfg.worker_timeout_s,
            queued_timeout_s=self.cfg.queued_timeout_s,
            timeout_grace_s=self.cfg.timeout_grace_s,
            reclaim_consumes_retry=self.cfg.reclaim_consumes_retry,
            max_losses=self.cfg.max_losses,
            gone_workers=self.worker_watch.gone() if self.worker_watch else frozenset(),
            self_fence_s=self.cfg.self_fence_s,
            reclaim_margin_s=self.cfg.reclaim_margin_s,
            metastore_now=metastore_now,
            pools=pools,
        )


def _follows(d: Decisions) -> bool:
    """Whether what `d` changed may be followed by more work at once: runs created, started
    or finished, task instances settled. Attempts queued are followed by their ends, which
    wake the loop, so no empty tick (two more transactions) is spent after them."""
    return bool(d.new_runs or d.start_runs or d.finish_runs or d.changes)


def _active(runs: Sequence[RunSnap]) -> int:
    """Attempts queued or running now, across all unfinished runs."""
    return sum(1 for run in runs for ti in run.tis.values() if ti.state in IN_FLIGHT_TASK_STATES)
