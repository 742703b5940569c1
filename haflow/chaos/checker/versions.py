"""P13: what runs is the metastore's code, whatever the masters' folders hold.

Judged from the event log (`dag.version`: each version a DAG took, with its task count), the
runs' pinned versions and the tasks' own records (the `$HAFLOW_CODE_HASH` each task ran).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from haflow.chaos.checker.base import Bounds, Verdict, verdict
from haflow.chaos.model import History

CLOCK_SLACK = timedelta(seconds=1)
"""A run created this close to a version change may carry either version."""


@dataclass(frozen=True)
class _Version:
    at: datetime
    code_hash: str
    tasks: int | None


def check_p13(h: History, b: Bounds) -> Verdict:
    """A DAG's code versions only move forward (a master with a stale folder never takes one
    back; only `haflow dags push` rolls one back, recorded as such); each run carries the
    version its DAG had when the run was created and has that version's tasks; and every task
    ran its run's version."""
    failures: list[str] = []
    notes: list[str] = []
    timeline = _timelines(h, failures)
    runs = {(r.dag_id, r.run_id): r for r in h.runs}
    for r in h.runs:
        if r.code_hash is None:
            continue
        seq = timeline.get(r.dag_id, [])
        allowed = _current_between(seq, r.created_at - CLOCK_SLACK, r.created_at + CLOCK_SLACK)
        if r.code_hash not in allowed:
            failures.append(
                f"run {r.dag_id} {r.run_id} (created {r.created_at:%H:%M:%S.%f}) has version "
                f"{r.code_hash[:12]}; its DAG had {', '.join(a[:12] for a in allowed) or 'none'}"
            )
    failures += _task_sets(h, timeline)
    ran = 0
    for rec in h.records:
        run = runs.get((rec.dag_id, rec.run_id))
        if run is None or run.code_hash is None or rec.kind != "start":
            continue
        ran += 1
        if rec.code_hash != run.code_hash:
            failures.append(
                f"{rec.dag_id} {rec.run_id} {rec.task_id} attempt {rec.attempt} on {rec.node} "
                f"ran version {rec.code_hash[:12] or '(none)'}, its run's is {run.code_hash[:12]}"
            )
    drifts = [f for f in h.faults if f.action == "deploy"]
    elected = [e.at for e in h.events if e.kind == "leader.elected"]
    exercised = any(any(t > f.ts for t in elected) for f in drifts) and ran > 0
    if exercised:
        notes.append(
            f"{len(drifts)} deploy(s) to one master, {ran} task start(s) judged, "
            f"{sum(len(s) for s in timeline.values())} version change(s)"
        )
    return verdict(
        "P13",
        "every run runs the metastore's code version, never a stale master's",
        failures,
        notes,
        exercised or bool(failures),
    )


def _timelines(h: History, failures: list[str]) -> dict[str, list[_Version]]:
    """Each DAG's versions in commit order; a version taken again is a failure."""
    out: dict[str, list[_Version]] = defaultdict(list)
    for e in sorted(h.events, key=lambda e: e.id):
        if e.kind != "dag.version" or e.dag_id is None:
            continue
        d = e.detail_dict()
        code_hash = str(d.get("code_hash", ""))
        seq = out[e.dag_id]
        if not d.get("rollback") and any(v.code_hash == code_hash for v in seq):
            failures.append(
                f"DAG {e.dag_id} went back to version {code_hash[:12]} at {e.at:%H:%M:%S.%f} "
                f"(by {d.get('by') or e.actor})"
            )
        tasks = d.get("tasks")
        seq.append(_Version(e.at, code_hash, int(tasks) if tasks is not None else None))
    return out


def _current_between(seq: list[_Version], start: datetime, end: datetime) -> list[str]:
    """The versions current at some moment of [start, end]."""
    times = [v.at for v in seq]
    first = bisect.bisect_right(times, start) - 1
    last = bisect.bisect_right(times, end) - 1
    return [v.code_hash for v in seq[max(first, 0) : last + 1]] if last >= 0 else []


def _task_sets(h: History, timeline: dict[str, list[_Version]]) -> list[str]:
    """A successful run had as many task instances as its version has tasks."""
    sizes = {(dag, v.code_hash): v.tasks for dag, seq in timeline.items() for v in seq}
    tasks: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in h.attempts:
        tasks[(a.dag_id, a.run_id)].add(a.task_id)
    out = []
    for r in h.runs:
        want = sizes.get((r.dag_id, r.code_hash or ""))
        have = len(tasks[(r.dag_id, r.run_id)])
        if r.state == "success" and want is not None and have != want:
            out.append(
                f"run {r.dag_id} {r.run_id} ran {have} task(s); its version "
                f"{(r.code_hash or '')[:12]} has {want}"
            )
    return out
