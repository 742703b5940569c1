"""P12: a pool never holds more running task instances than its slots, across leader and
worker loss, judged from the tasks' own records."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from haflow.chaos.checker.base import DOWN_ACTIONS, Bounds, Verdict, verdict
from haflow.chaos.model import History

_Key = tuple[str, str, str, int]  # dag, run, task, attempt


def check_p12(h: History, b: Bounds) -> Verdict:
    """For each capped pool: the attempts of its task instances, each from its first record
    (`start`) to its last (its `end`, or the last `tick` of one that was killed or cut off),
    never number more at any instant than the pool's slots (each counting its pool_slots).
    The records are the tasks' own, on their nodes: what ran, not what the metastore said."""
    pool_of: dict[tuple[str, str, str], tuple[str, int]] = {}
    for a in h.attempts:
        pool_of[(a.dag_id, a.run_id, a.task_id)] = (a.pool, a.pool_slots)
    spans: dict[_Key, list[datetime]] = {}
    for r in h.records:
        key = (r.dag_id, r.run_id, r.task_id, r.attempt)
        first_last = spans.setdefault(key, [r.ts, r.ts])
        first_last[0], first_last[1] = min(first_last[0], r.ts), max(first_last[1], r.ts)
    marks: dict[str, list[tuple[datetime, int, _Key]]] = defaultdict(list)
    for key, (start, end) in spans.items():
        pool, slots = pool_of.get(key[:3], ("", 1))
        if h.pools.get(pool, -1) >= 0:
            marks[pool] += [(start, slots, key), (end, -slots, key)]
    failures: list[str] = []
    notes: list[str] = []
    peaks: list[float] = []
    for pool, points in sorted(marks.items()):
        cap = h.pools[pool]
        held, peak, worst = 0, 0, ""
        for ts, step, key in sorted(points, key=lambda p: (p[0], p[1])):  # ends first at a tie
            held += step
            if held > peak:
                peak, worst = held, f"{ts:%H:%M:%S.%f} ({'/'.join(map(str, key))} began)"
        peaks.append(float(peak))
        line = f"pool {pool!r}: {cap} slots, at most {peak} held by running attempts"
        if peak > cap:
            failures.append(f"{line}, first at {worst}")
        else:
            notes.append(line)
    faults = [f for f in h.faults if f.action in DOWN_ACTIONS]
    exercised = bool(marks) and bool(faults)
    measures = {"pool_peak": peaks} if peaks else {}
    return verdict("P12", "no pool over-committed", failures, notes, exercised, measures)
