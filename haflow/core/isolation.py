"""Isolation of one DAG's bad data: when the leader's transaction is refused for what a
DAG's values made it write (a constraint, a value out of range), its decisions are applied
again DAG by DAG, and a DAG whose own part is still refused is set aside as broken. The loop
goes on with every other DAG; a broken one is tried again after `retry_s` or when its DAG
changes (a new parse). Its cause is shown where import errors are.

Only data errors are isolated so: a fenced-out leader, a lost backend or a concurrent change
are the scheduler's own and keep their own handling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from haflow.core.snapshot import BackfillSnap, Decisions, RunSnap


def split_by_dag(
    d: Decisions, runs: Sequence[RunSnap], backfills: Sequence[BackfillSnap]
) -> dict[str, Decisions]:
    """`d` as one Decisions per DAG it touches, each whole on its own (a run's decisions and
    the revision they were planned on go together)."""
    of_run = {r.pk: r.dag_id for r in runs}
    of_ti = {ti.id: r.dag_id for r in runs for ti in r.tis.values()}
    of_backfill = {b.id: b.dag_id for b in backfills}
    out: dict[str, Decisions] = {}

    def part(dag_id: str) -> Decisions:
        return out.setdefault(dag_id, Decisions(capped=d.capped))

    for new in d.new_runs:
        part(new.dag_id).new_runs.append(new)
    for pk in d.start_runs:
        part(of_run[pk]).start_runs.append(pk)
    for done in d.finish_runs:
        part(of_run[done[0]]).finish_runs.append(done)
    for pk, revision in d.revisions.items():
        part(of_run[pk]).revisions[pk] = revision
    for b in d.finish_backfills:
        part(of_backfill[b]).finish_backfills.append(b)
    _split_tis(d, of_ti, part)
    return out


def _split_tis(d: Decisions, of_ti: dict[int, str], part: Callable[[str], Decisions]) -> None:
    for queued in d.to_queue:
        part(of_ti[queued[0]]).to_queue.append(queued)
    for change in d.changes:
        part(of_ti[change.ti_id]).changes.append(change)
    for again in d.republish:
        part(of_ti[again[0]]).republish.append(again)


@dataclass(frozen=True)
class Broken:
    dag_id: str
    fileloc: str
    cause: str
    since: datetime
    fingerprint: str  # of the DAG when it broke: a new parse of it is tried at once


@dataclass
class Quarantine:
    """The DAGs set aside as broken by this leader, and when each is tried again."""

    retry_s: float = 60.0
    broken: dict[str, Broken] = field(default_factory=dict)

    def add(self, b: Broken) -> None:
        self.broken[b.dag_id] = b

    def held(self, now: datetime, fingerprints: dict[str, str]) -> set[str]:
        """The DAGs still set aside at `now`; those due again or changed since are let go."""
        due = now - timedelta(seconds=self.retry_s)
        for dag_id, b in list(self.broken.items()):
            if b.since <= due or fingerprints.get(dag_id, b.fingerprint) != b.fingerprint:
                del self.broken[dag_id]
        return set(self.broken)

    def errors(self) -> list[tuple[str, int | None, str]]:
        """As import errors: (file, line, message)."""
        return [
            (
                b.fileloc,
                None,
                f"DAG {b.dag_id!r} is not scheduled: {b.cause}; the other DAGs go on, "
                f"and this one is tried again in "
                f"{self.retry_s:g} s or when its file changes",
            )
            for b in self.broken.values()
        ]
