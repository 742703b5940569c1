"""P3 (a lost worker's attempts are reclaimed and re-queued), P4 (every run succeeds unless its
own code failed) and P5 (no attempt twice, no task instance running concurrently with itself,
from the tasks' own records)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from haflow.chaos.checker.base import (
    TERMINAL_RUN_STATES,
    Bounds,
    Verdict,
    secs,
    verdict,
    zookeeper_only,
)
from haflow.chaos.model import Attempt, Fault, History, TaskRecord

# -- P3 -------------------------------------------------------------------------------------


def check_p3(h: History, b: Bounds) -> Verdict:
    """Worker SIGKILLed or cut off mid-task: its attempts are reclaimed and re-queued. A worker
    cut off from ZooKeeper only is alive to the metastore: its attempts must run on, never
    reclaimed (ZooKeeper is a hint, the heartbeat the truth)."""
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {"reclaim_s": [], "requeue_s": []}
    kept = 0
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
        if zookeeper_only(h, f):
            kept += len(victims)
            for v in victims:
                _judge_kept(v, by_ti[v.ti].get(v.attempt + 1), f, failures, notes)
            continue
        for v in victims:
            _judge_reclaim(v, by_ti[v.ti].get(v.attempt + 1), f, b, failures, notes, measures)
            if f.action == "partition":
                _self_fenced(v, f, last_record, notes, measures)
    return verdict(
        "P3",
        "worker lost mid-task: attempts reclaimed and re-queued",
        failures,
        notes,
        bool(measures["requeue_s"]) or bool(failures) or bool(kept),
        {k: v for k, v in measures.items() if v},
    )


def _judge_kept(
    victim: Attempt, successor: Attempt | None, f: Fault, failures: list[str], notes: list[str]
) -> None:
    what = f"attempt {victim.attempt} of {'/'.join(victim.ti)} on {f.node} cut off ZooKeeper"
    if victim.state != "success" or successor is not None:
        failures.append(f"{what}: ended {victim.state} ({victim.reason}); it should have run on")
    else:
        notes.append(f"{what}: ran on to success, nothing reclaimed")


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
    return a.worker_id == f.node and mid_task(
        a.state, a.started_at, a.ended_at, f.ts, b.fault_grace_s
    )


def mid_task(
    state: str, started: datetime | None, ended: datetime | None, at: datetime, grace_s: float
) -> bool:
    """Whether an attempt was running at `at`, when a fault struck its worker (the rule P3
    judges by, and the drill checks a fault's landing by). One that ended on its own within
    `grace_s` after was not; one that ended `lost` after it was its victim, however soon it was
    reclaimed (on the compose game day it was 0.24 s after the kill)."""
    if started is None or started > at:
        return False
    if ended is None:
        return True
    if state == "lost":
        return ended >= at
    return secs(at, ended) > grace_s


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

OWN_EXIT = re.compile(r"exited with code (\d+)\b")
"""The worker's reason for an attempt whose task process exited by itself with a non-zero code
(`haflow.worker.process`); a code above 128 is what a shell reports for a child killed by a
signal (e.g. the OOM killer), so it is not counted as the task's own."""


def check_p4(h: History, b: Bounds) -> Verdict:
    """Every run succeeds unless its own tasks' code failed.

    A run that ends `success` keeps the property, whatever happened on the way (lost
    attempts, retries). A run not in a terminal state at the end of the observation breaks
    it. A run that ends `failed` breaks it unless the failure is the tasks' own, which counts
    only on this evidence, for the final (highest numbered) attempt of a task instance:
    - the attempt row is `failed` (not `lost`: reclaimed by the leader, or reported stopped
      by its worker; not `timed_out`, which the leader's backstop also decides) with the
      worker's reason "exited with code N", 0 < N <= 128: the task process exited by itself
      (a signal, a code a shell gives a killed child, "could not start", are not counted);
    - and the task's own records hold a `start` of that attempt (its code ran) and no `end`
      (its code did not run to the end).
    The run is excused only when at least one task instance ended so and every other one
    whose final attempt did not succeed ended so too: a task instance failed by the
    infrastructure (its final attempt lost up to `[worker] max_losses`, killed by
    self-fencing, timed out, ...) fails the property even next to a task whose code failed.
    Task instances without attempts (upstream failed, skipped) are not judged: their state
    follows from the others'. A failed run with no such evidence (no attempt failed, or no
    records of its tasks) breaks the property: the checker assumes no fault of the code it
    cannot show.
    """
    tis: dict[tuple[str, str], dict[str, list[Attempt]]] = defaultdict(lambda: defaultdict(list))
    for a in h.attempts:
        tis[(a.dag_id, a.run_id)][a.task_id].append(a)
    kinds: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for r in h.records:
        kinds[(*r.ti, r.attempt)].add(r.kind)
    failures: list[str] = []
    notes: list[str] = []
    own_runs = 0
    for run in sorted(h.runs, key=lambda r: (r.created_at, r.dag_id, r.run_id)):
        name = f"{run.dag_id}/{run.run_id}"
        if run.state == "success":
            continue
        if run.state not in TERMINAL_RUN_STATES:
            failures.append(f"run {name} ended the observation {run.state!r}")
            continue
        finals = [
            max(tries, key=lambda a: a.attempt)
            for _, tries in sorted(tis[(run.dag_id, run.run_id)].items())
        ]
        own: list[str] = []
        infra: list[str] = []
        for a in finals:
            if a.state == "success":
                continue
            code_failed, what = _final_attempt(a, kinds[(*a.ti, a.attempt)])
            (own if code_failed else infra).append(what)
        if own and not infra:
            own_runs += 1
            notes.append(f"run {name} ended {run.state} by its own code: " + "; ".join(own))
        elif own:
            failures.append(
                f"run {name} ended {run.state}: "
                + "; ".join(infra)
                + "; failed by the infrastructure, though its own code failed too: "
                + "; ".join(own)
            )
        else:
            why = "; ".join(infra) if infra else "no attempt of its tasks failed"
            failures.append(f"run {name} ended {run.state}: {why}; no task's own code failed")
    states = Counter(r.state for r in h.runs)
    summary = f"{len(h.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    notes.insert(0, summary + (f" ({own_runs} by their own code)" if own_runs else ""))
    return verdict(
        "P4", "every run succeeds unless its own code failed", failures, notes, bool(h.runs)
    )


def _final_attempt(a: Attempt, kinds: set[str]) -> tuple[bool, str]:
    """Whether the final attempt `a` of a task instance that did not succeed failed by the
    task's own code (see `check_p4`), and what the history says of it."""
    what = f"{a.task_id} attempt {a.attempt} {a.state} ({a.reason or 'no reason recorded'})"
    if a.state != "failed":
        return False, what
    exited = OWN_EXIT.match(a.reason)
    if exited is None or not 0 < int(exited.group(1)) <= 128:
        return False, f"{what}, not an exit of the task's code"
    if "start" not in kinds:
        return False, f"{what}, with no `start` of its own"
    if "end" in kinds:
        return False, f"{what}, after its own `end`"
    return True, f"{what} after its own `start`, with no `end`"


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
