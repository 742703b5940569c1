"""P3 (a lost worker's attempts are reclaimed and re-queued), P4 (every run ends) and P5 (no
attempt twice, no task instance running concurrently with itself, from the tasks' own records)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from haflow.chaos.checker.base import TERMINAL_RUN_STATES, Bounds, Verdict, secs, verdict
from haflow.chaos.model import Attempt, Fault, History, TaskRecord

# -- P3 -------------------------------------------------------------------------------------


def check_p3(h: History, b: Bounds) -> Verdict:
    """Worker SIGKILLed or cut off mid-task: its attempts are reclaimed and re-queued."""
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {"reclaim_s": [], "requeue_s": []}
    by_ti: dict[tuple[str, str, str], dict[int, Attempt]] = defaultdict(dict)
    for a in h.attempts:
        by_ti[a.ti][a.attempt] = a
    last_record: dict[tuple[str, str, str, int], datetime] = {}
    for r in h.records:
        key = (*r.ti, r.attempt)
        last_record[key] = max(r.ts, last_record.get(key, r.ts))
    for f in h.faults:
        if f.action not in ("kill", "partition") or h.nodes.get(f.node) != "worker":
            continue
        victims = [a for a in h.attempts if _mid_task(a, f, b)]
        if not victims:
            notes.append(f"{f.action} {f.node} at {f.ts:%H:%M:%S}: no attempt was running")
        for v in victims:
            _judge_reclaim(v, by_ti[v.ti].get(v.attempt + 1), f, b, failures, notes, measures)
            if f.action == "partition":
                _self_fenced(v, f, last_record, notes, measures)
    return verdict(
        "P3",
        "worker lost mid-task: attempts reclaimed and re-queued",
        failures,
        notes,
        bool(measures["requeue_s"]) or bool(failures),
        {k: v for k, v in measures.items() if v},
    )


def _self_fenced(
    victim: Attempt,
    f: Fault,
    last_record: dict[tuple[str, str, str, int], datetime],
    notes: list[str],
    measures: dict[str, list[float]],
) -> None:
    """How long a cut-off worker's task went on running, from its own last record: the
    worker's self-fencing (P5 judges that it stopped before the reclaimed attempt started)."""
    last = last_record.get((*victim.ti, victim.attempt))
    if last is None:
        return
    ran = secs(f.ts, last)
    measures.setdefault("partitioned_task_ran_s", []).append(ran)
    notes.append(
        f"attempt {victim.attempt} of {'/'.join(victim.ti)} on cut-off {f.node}: its last own "
        f"record {ran:.3f} s after the cut"
    )


def _mid_task(a: Attempt, f: Fault, b: Bounds) -> bool:
    if a.worker_id != f.node or a.started_at is None or a.started_at > f.ts:
        return False
    return a.ended_at is None or secs(f.ts, a.ended_at) > b.fault_grace_s


def _judge_reclaim(
    victim: Attempt,
    successor: Attempt | None,
    f: Fault,
    b: Bounds,
    failures: list[str],
    notes: list[str],
    measures: dict[str, list[float]],
) -> None:
    what = f"attempt {victim.attempt} of {'/'.join(victim.ti)} on {f.node} ({f.action})"
    if victim.state != "lost":
        failures.append(f"{what}: ended {victim.state!r}, not reclaimed as lost")
        return
    if victim.ended_at is not None:
        measures["reclaim_s"].append(secs(f.ts, victim.ended_at))
    if successor is None:
        failures.append(f"{what}: reclaimed but never re-queued")
        return
    took = secs(f.ts, successor.queued_at)
    measures["requeue_s"].append(took)
    line = f"{what}: attempt {successor.attempt} queued {took:.3f} s later (bound {b.reclaim_s} s)"
    (failures if took > b.reclaim_s else notes).append(line)


# -- P4 -------------------------------------------------------------------------------------


def check_p4(h: History, b: Bounds) -> Verdict:
    """Every triggered run reaches a terminal state."""
    stuck = [r for r in h.runs if r.state not in TERMINAL_RUN_STATES]
    failures = [f"run {r.dag_id}/{r.run_id} ended the observation {r.state!r}" for r in stuck]
    states = Counter(r.state for r in h.runs)
    notes = [f"{len(h.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    return verdict("P4", "every run reaches a terminal state", failures, notes, bool(h.runs))


# -- P5 -------------------------------------------------------------------------------------


def check_p5(h: History, b: Bounds) -> Verdict:
    """No attempt is recorded twice; no task instance runs concurrently with itself."""
    failures = [
        f"attempt {k[3]} of {'/'.join(k[:3])} has {n} rows"
        for k, n in Counter((*a.ti, a.attempt) for a in h.attempts).items()
        if n > 1
    ]
    claims = Counter(
        (e.dag_id, e.run_id, e.task_id, e.attempt) for e in h.events if e.kind == "attempt.claimed"
    )
    failures += [
        f"attempt {k[3]} of {k[0]}/{k[1]}/{k[2]} claimed {n} times"
        for k, n in claims.items()
        if n > 1
    ]
    starts = Counter((*r.ti, r.attempt) for r in h.records if r.kind == "start")
    failures += [
        f"attempt {k[3]} of {'/'.join(k[:3])} started {n} times (tasks' own records)"
        for k, n in starts.items()
        if n > 1
    ]
    failures += _overlaps(h.records)
    notes = [f"{len(h.attempts)} attempts, {sum(starts.values())} recorded executions"]
    return verdict(
        "P5", "no double attempt, no concurrent run of a task", failures, notes, bool(h.records)
    )


def _overlaps(records: Iterable[TaskRecord]) -> list[str]:
    """Attempts of one task instance whose recorded executions overlap in time: an attempt
    runs from its `start` to its last record (its `end`, or its last `tick` if it died)."""
    spans: dict[tuple[str, str, str], dict[int, list[datetime]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in records:
        spans[r.ti][r.attempt].append(r.ts)
    out = []
    for ti, attempts in spans.items():
        ordered = sorted((min(ts), max(ts), n) for n, ts in attempts.items())
        latest: tuple[datetime, datetime, int] | None = None  # the span reaching furthest
        for span in ordered:
            if latest is not None and span[0] < latest[1]:
                s1, e1, n1 = latest
                out.append(
                    f"{'/'.join(ti)}: attempt {span[2]} started at {span[0]:%H:%M:%S.%f} while "
                    f"attempt {n1} ran ({s1:%H:%M:%S.%f} to {e1:%H:%M:%S.%f})"
                )
            if latest is None or span[1] > latest[1]:
                latest = span
    return out
