"""P14: the metastore's primary lost (killed or cut off) under Patroni: nothing it acknowledged
is lost, and scheduling resumes soon after the standby's promotion.

Read from the fault log: the drill's `acknowledged` observation (what the primary had committed,
read from it just before the fault, on the primary's node), the fault on that node, and the
`promoted` observation (when another member first answered as a running primary). Scheduling
resumes at the first scheduler write (a fenced event) committed after the promotion. The tasks'
own records, written outside the database, must each be an attempt the metastore still knows.
"""

from __future__ import annotations

from typing import Any

from haflow.chaos.checker.base import DOWN_ACTIONS, Bounds, Verdict, secs, verdict
from haflow.chaos.model import OBSERVE, Fault, History


def check_p14(h: History, b: Bounds) -> Verdict:
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {"promotion_s": [], "scheduling_gap_s": [], "lost": []}
    events = {e.id for e in h.events}
    runs = {(r.dag_id, r.run_id) for r in h.runs}
    attempts = {(a.dag_id, a.run_id, a.task_id, a.attempt) for a in h.attempts}
    writes = sorted(e.at for e in h.events if e.is_scheduler_write)
    exercised = False
    for ack in _observed(h, "acknowledged"):
        fault = next(
            (
                f
                for f in h.faults
                if f.node == ack.node and f.action in DOWN_ACTIONS and f.ts >= ack.ts
            ),
            None,
        )
        if fault is None:
            continue
        promoted = next((f for f in _observed(h, "promoted") if f.ts >= fault.ts), None)
        if promoted is None:
            failures.append(f"{fault.action} of primary {fault.node}: no member was promoted")
            continue
        exercised = True
        lost = _missing(ack.detail, events, runs, attempts)
        measures["lost"].append(float(len(lost)))
        failures += [
            f"acknowledged before the {fault.action} of {fault.node}, gone: {x}" for x in lost[:10]
        ]
        measures["promotion_s"].append(secs(fault.ts, promoted.ts))
        resumed = next((t for t in writes if t >= promoted.ts), None)
        if resumed is None:
            failures.append(f"no scheduler write after {promoted.node}'s promotion")
            continue
        gap = secs(promoted.ts, resumed)
        measures["scheduling_gap_s"].append(gap)
        if gap > b.metastore_resume_s:
            failures.append(
                f"scheduling resumed {gap:.2f} s after {promoted.node}'s promotion "
                f"(bound {b.metastore_resume_s} s)"
            )
        notes.append(
            f"{fault.action} of primary {fault.node} at {fault.ts:%H:%M:%S.%f}: "
            f"{promoted.node} promoted {secs(fault.ts, promoted.ts):.2f} s later, "
            f"scheduling {gap:.2f} s after that; {len(lost)} acknowledged rows lost"
        )
    unknown = sorted({(r.dag_id, r.run_id, r.task_id, r.attempt) for r in h.records} - attempts)
    failures += [f"a task ran as an attempt the metastore does not know: {x}" for x in unknown[:10]]
    return verdict(
        "P14",
        "metastore primary lost: nothing acknowledged lost, scheduling resumes",
        failures,
        notes,
        exercised,
        measures if exercised else {},
    )


def _observed(h: History, what: str) -> list[Fault]:
    return [f for f in h.faults if f.action == OBSERVE and f.detail.get("what") == what]


def _missing(
    detail: dict[str, Any],
    events: set[int],
    runs: set[tuple[str, str]],
    attempts: set[tuple[str, str, str, int]],
) -> list[str]:
    out: list[str] = []
    for first, last in _listed(detail, "events"):
        out += [f"event {i}" for i in range(int(first), int(last) + 1) if i not in events]
    for dag_id, run_id in _listed(detail, "runs"):
        if (dag_id, run_id) not in runs:
            out.append(f"run {dag_id} {run_id}")
    for dag_id, run_id, task_id, attempt in _listed(detail, "attempts"):
        if (dag_id, run_id, task_id, int(attempt)) not in attempts:
            out.append(f"attempt {attempt} of {dag_id} {run_id} {task_id}")
    return out


def _listed(detail: dict[str, Any], key: str) -> list[list[Any]]:
    value = detail.get(key)
    return [v for v in value if isinstance(v, list)] if isinstance(value, list) else []
