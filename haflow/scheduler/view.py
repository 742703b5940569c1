"""The leader's snapshot, kept between ticks and read again only where it may have changed.

Who changes a task instance decides how the leader learns of it:
- the leader itself (queue, skip, reclaim, retry): it names those task instances to the next
  read (`touched`);
- an attempt's claim, heartbeat and report: they change only task instances in flight (queued
  or running), which every read lists again;
- anything else (a clear): it bumps its run's `revision`, and a run whose revision moved is
  read again whole.

So a tick reads the unfinished runs, the task instances in flight and the few that left
flight, never every task instance of every running run. The view is dropped (the next read is
whole) when leadership begins and after any tick that did not complete, so it never outlives
a failed or rolled-back write. The planner gets the same `Snapshot` either way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from haflow.core.planner import Decisions, RunSnap, TISnap
from haflow.core.snapshot import Snapshot
from haflow.core.states import IN_FLIGHT_TASK_STATES, RunState
from haflow.metastore.records import DagFlags
from haflow.metastore.repository import Repository


class LeaderView:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._revisions: dict[int, int] = {}  # running run pk -> revision its TIs were read at
        self._tis: dict[int, dict[str, TISnap]] = {}  # running run pk -> task id -> TI
        self._recheck: set[int] = set()  # TI ids to read again at the next tick
        self.whole_reads = 0  # runs read whole so far (tests and benchmarks look)

    def reset(self) -> None:
        """Forget everything: the next snapshot reads every running run whole."""
        self._revisions.clear()
        self._tis.clear()
        self._recheck.clear()

    def snapshot(
        self, past: Mapping[str, Collection[str]] | None = None
    ) -> tuple[Snapshot, list[DagFlags]]:
        """The unfinished runs as the planner sees them (with, for the DAGs in `past`, the
        states of those depends_on_past tasks in the run before each), and the active DAGs'
        rows."""
        in_flight = {
            ti.id
            for tis in self._tis.values()
            for ti in tis.values()
            if ti.state in IN_FLIGHT_TASK_STATES
        }
        delta = self.repo.scheduling.read(self._revisions, self._recheck | in_flight, past)
        running = {h.pk: h for h in delta.runs if h.state is RunState.RUNNING}
        for pk in list(self._tis):
            if pk not in running:
                del self._tis[pk], self._revisions[pk]
        for pk, tis in delta.whole.items():
            self._tis[pk] = tis
            self._revisions[pk] = running[pk].revision
        self.whole_reads += len(delta.whole)
        for pk, ti in delta.tis:
            held = self._tis.get(pk)
            if held is not None:
                held[ti.task_id] = ti
        self._recheck.clear()
        runs = [
            RunSnap(
                h.pk,
                h.dag_id,
                h.state,
                self._tis.get(h.pk, {}),
                h.revision,
                delta.past.get(h.pk, {}),
                h.code_hash,
            )
            for h in delta.runs
        ]
        return Snapshot(runs, delta.metastore_now, delta.pools, delta.backfills), delta.dags

    def touched(self, d: Decisions) -> None:
        """The leader committed `d`: read the task instances it changed again next time."""
        self._recheck.update(ti_id for ti_id, _ in d.to_queue)
        self._recheck.update(c.ti_id for c in d.changes)
        self._recheck.update(ti_id for ti_id, _ in d.republish)
