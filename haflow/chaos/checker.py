"""Judge the availability properties P1..P9 (DESIGN.md section 4) from a recorded history.

Pure functions over `haflow.chaos.model.History`: no docker, no SQL, no clock. Each check
returns a `Verdict` (PASS, FAIL, or NOT_EXERCISED when the history holds no fault that puts the
property to the test) with the evidence it found and the times it measured. The checker never
trusts a daemon's claim about itself: leadership is read from fenced writes in the event log,
execution from the tasks' own records, faults from the fault log.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from haflow.chaos.model import Attempt, Event, Fault, History, Run, TaskRecord

DOWN_ACTIONS = frozenset({"kill", "pause", "partition", "stop"})
UP_ACTIONS = frozenset({"resume", "heal", "restart", "start"})
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_EXERCISED = "NOT_EXERCISED"


@dataclass(frozen=True)
class Bounds:
    """The targets of DESIGN.md section 4 (defaults), and the checker's tolerances."""

    takeover_kill_s: float = 5.0
    takeover_term_s: float = 1.0
    reclaim_s: float = 10.0
    fallback_s: float = 15.0
    lb_drop_s: float = 3.0
    cron_slack_s: float = 1.0
    step_down_s: float = 30.0
    paused_takeover_s: float = 11.0
    """A leader paused this long must have been replaced: the ZooKeeper session (6 s by
    default) expires, then P2's 5 s."""
    fault_grace_s: float = 0.5
    """An attempt that ended within this long after a fault on its worker was not mid-task."""


@dataclass(frozen=True)
class Verdict:
    prop: str
    title: str
    status: Status
    evidence: tuple[str, ...] = ()
    measures: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != Status.FAIL


def _verdict(
    prop: str,
    title: str,
    failures: list[str],
    notes: list[str],
    exercised: bool,
    measures: dict[str, list[float]] | None = None,
) -> Verdict:
    exercised_status = Status.PASS if exercised else Status.NOT_EXERCISED
    status = Status.FAIL if failures else exercised_status
    return Verdict(
        prop,
        title,
        status,
        tuple(failures + notes),
        {k: tuple(v) for k, v in (measures or {}).items()},
    )


def _s(a: datetime, b: datetime) -> float:
    """Seconds from `a` to `b`."""
    return (b - a).total_seconds()


# -- leadership as recorded -----------------------------------------------------------------


class Leadership:
    """Who led when, from the `leader.elected` events and the ends of their epochs."""

    def __init__(self, events: Iterable[Event]) -> None:
        ordered = sorted(events, key=lambda e: e.id)
        self.elections = [e for e in ordered if e.kind == "leader.elected" and e.epoch]
        self.by_epoch = {e.epoch: e for e in self.elections}
        self.ended: dict[int, datetime] = {}
        for e in ordered:
            if e.kind in ("leader.resigned", "leader.fenced_out") and e.epoch is not None:
                self.ended.setdefault(e.epoch, e.ts)
        self._times = sorted(e.ts for e in self.elections)
        self._by_time = sorted(self.elections, key=lambda e: e.ts)

    def leader_at(self, ts: datetime) -> Event | None:
        """The election whose epoch was current at `ts`, unless that epoch had ended."""
        i = bisect.bisect_right(self._times, ts)
        if i == 0:
            return None
        current = self._by_time[i - 1]
        end = self.ended.get(current.epoch or 0)
        return None if end is not None and end <= ts else current

    def next_after(self, ts: datetime, epoch: int = 0) -> Event | None:
        """The first election after `ts` of an epoch above `epoch`."""
        return next((e for e in self._by_time if e.ts > ts and (e.epoch or 0) > epoch), None)

    def mode(self, epoch: int | None) -> str:
        e = self.by_epoch.get(epoch)
        return str(e.detail_dict().get("mode", "")) if e else ""


class NodeStates:
    """Whether a node was down (killed, paused, cut off, stopped) at a time, per the fault log."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self.faults = sorted(faults, key=lambda f: f.ts)

    def down_at(self, node: str, ts: datetime) -> bool:
        down = False
        for f in self.faults:
            if f.ts > ts:
                break
            if f.node == node:
                down = f.action in DOWN_ACTIONS or (down and f.action not in UP_ACTIONS)
        return down

    def next_up(self, node: str, after: datetime, action: str | None = None) -> Fault | None:
        return next(
            (
                f
                for f in self.faults
                if f.node == node
                and f.ts > after
                and f.action in UP_ACTIONS
                and (action is None or f.action == action)
            ),
            None,
        )


# -- P1 -------------------------------------------------------------------------------------


def check_p1(h: History, b: Bounds) -> Verdict:
    """At most one scheduler's writes are accepted per epoch; epochs only grow."""
    lead = Leadership(h.events)
    failures: list[str] = []
    seen = 0
    for e in lead.elections:  # in commit order
        if (e.epoch or 0) <= seen:
            failures.append(f"epoch {e.epoch} elected (event {e.id}) after epoch {seen}")
        seen = max(seen, e.epoch or 0)
    writes = [e for e in h.events if e.is_scheduler_write]
    failures += _second_writers(writes, lead)
    failures += _stale_writes(writes, lead)
    failures += [
        f"attempt {a.attempt} of {a.ti} queued under epoch {a.epoch}, which was never elected"
        for a in h.attempts
        if a.epoch not in lead.by_epoch
    ]
    notes = [f"{len(lead.elections)} epochs, {len(writes)} fenced writes checked"]
    return _verdict(
        "P1",
        "one writer per epoch, epochs only grow",
        failures,
        notes,
        bool(lead.elections),
    )


def _second_writers(writes: list[Event], lead: Leadership) -> list[str]:
    out = []
    for e in writes:
        holder = lead.by_epoch.get(e.epoch)
        if holder is None:
            out.append(f"{e.kind} (event {e.id}) by {e.actor} under epoch {e.epoch}: never elected")
        elif e.actor != holder.actor:
            out.append(
                f"{e.kind} (event {e.id}) by {e.actor} accepted under epoch {e.epoch}, "
                f"which {holder.actor} holds"
            )
    return out


def _stale_writes(writes: list[Event], lead: Leadership) -> list[str]:
    """Writes under epoch e committed after a higher epoch was taken (event ids are commit
    order for fenced writes: both lock the leader row)."""
    out = []
    for e in writes:
        newer = [x for x in lead.elections if (x.epoch or 0) > (e.epoch or 0) and x.id < e.id]
        if newer:
            out.append(
                f"{e.kind} (event {e.id}) by {e.actor} accepted under epoch {e.epoch} after "
                f"epoch {newer[0].epoch} was taken (event {newer[0].id})"
            )
    return out


# -- P2 -------------------------------------------------------------------------------------


def check_p2(h: History, b: Bounds) -> Verdict:
    """Leader SIGKILLed: a standby schedules again within 5 s (SIGTERM: 1 s)."""
    lead = Leadership(h.events)
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {"takeover_kill_s": [], "takeover_term_s": []}
    for f in h.faults:
        if f.action != "kill" or h.nodes.get(f.node) != "master":
            continue
        old = lead.leader_at(f.ts)
        if old is None or old.node != f.node:
            continue
        term = f.signal == "TERM"
        bound = b.takeover_term_s if term else b.takeover_kill_s
        new = lead.next_after(f.ts, old.epoch or 0)
        if new is None:
            failures.append(f"leader {old.actor} killed (SIG{f.signal}) at {f.ts}: no new leader")
            continue
        took = _s(f.ts, new.ts)
        measures["takeover_term_s" if term else "takeover_kill_s"].append(took)
        line = (
            f"leader {f.node} (epoch {old.epoch}) SIG{f.signal} at {f.ts:%H:%M:%S.%f}: "
            f"{new.actor} leads epoch {new.epoch} after {took:.3f} s (bound {bound} s)"
        )
        (failures if took > bound else notes).append(line)
    exercised = bool(measures["takeover_kill_s"] or measures["takeover_term_s"])
    measures = {k: v for k, v in measures.items() if v}
    return _verdict("P2", "leader killed: a standby leads", failures, notes, exercised, measures)


# -- P3 -------------------------------------------------------------------------------------


def check_p3(h: History, b: Bounds) -> Verdict:
    """Worker SIGKILLed or cut off mid-task: its attempts are reclaimed and re-queued."""
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {"reclaim_s": [], "requeue_s": []}
    by_ti: dict[tuple[str, str, str], dict[int, Attempt]] = defaultdict(dict)
    for a in h.attempts:
        by_ti[a.ti][a.attempt] = a
    for f in h.faults:
        if f.action not in ("kill", "partition") or h.nodes.get(f.node) != "worker":
            continue
        victims = [a for a in h.attempts if _mid_task(a, f, b)]
        if not victims:
            notes.append(f"{f.action} {f.node} at {f.ts:%H:%M:%S}: no attempt was running")
        for v in victims:
            _judge_reclaim(v, by_ti[v.ti].get(v.attempt + 1), f, b, failures, notes, measures)
    return _verdict(
        "P3",
        "worker lost mid-task: attempts reclaimed and re-queued",
        failures,
        notes,
        bool(measures["requeue_s"]) or bool(failures),
        {k: v for k, v in measures.items() if v},
    )


def _mid_task(a: Attempt, f: Fault, b: Bounds) -> bool:
    if a.worker_id != f.node or a.started_at is None or a.started_at > f.ts:
        return False
    return a.ended_at is None or _s(f.ts, a.ended_at) > b.fault_grace_s


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
        measures["reclaim_s"].append(_s(f.ts, victim.ended_at))
    if successor is None:
        failures.append(f"{what}: reclaimed but never re-queued")
        return
    took = _s(f.ts, successor.queued_at)
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
    return _verdict("P4", "every run reaches a terminal state", failures, notes, bool(h.runs))


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
    return _verdict(
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


# -- P6 -------------------------------------------------------------------------------------


def check_p6(h: History, b: Bounds) -> Verdict:
    """Whole ZooKeeper ensemble down: scheduling continues on the database lock."""
    lead = Leadership(h.events)
    failures: list[str] = []
    notes: list[str] = []
    measured: list[float] = []
    for down_at, up_at in _ensemble_outages(h):
        writes = [
            e
            for e in h.events
            if e.is_scheduler_write and e.ts > down_at and lead.mode(e.epoch) == "database"
        ]
        first = min(writes, key=lambda e: e.ts, default=None)
        if first is None or (up_at is not None and first.ts > up_at):
            if up_at is not None and _s(down_at, up_at) < b.fallback_s:
                notes.append(f"ensemble down {_s(down_at, up_at):.1f} s only: fallback not due")
                continue
            failures.append(f"ensemble down at {down_at}: no write on the database lock")
            continue
        took = _s(down_at, first.ts)
        measured.append(took)
        line = (
            f"ensemble down at {down_at:%H:%M:%S.%f}: {first.kind} by {first.actor} (epoch "
            f"{first.epoch}, database mode) after {took:.3f} s (bound {b.fallback_s} s)"
        )
        (failures if took > b.fallback_s else notes).append(line)
    return _verdict(
        "P6",
        "ZooKeeper down: scheduling continues on the database lock",
        failures,
        notes,
        bool(measured) or bool(failures),
        {"fallback_s": measured} if measured else {},
    )


def _ensemble_outages(h: History) -> list[tuple[datetime, datetime | None]]:
    """(all members down, first member back) for each time the whole ensemble was down."""
    members = set(h.nodes_of("zookeeper"))
    down: set[str] = set()
    out: list[tuple[datetime, datetime | None]] = []
    for f in sorted(h.faults, key=lambda f: f.ts):
        if f.node not in members:
            continue
        was_all = bool(members) and down == members
        if f.action in DOWN_ACTIONS and not (f.action == "partition" and f.detail.get("peers")):
            down.add(f.node)
        elif f.action in UP_ACTIONS:
            down.discard(f.node)
        if not was_all and down == members:
            out.append((f.ts, None))
        elif was_all and down != members:
            out[-1] = (out[-1][0], f.ts)
    return out


# -- P7 -------------------------------------------------------------------------------------


def check_p7(h: History, b: Bounds) -> Verdict:
    """Leader paused past its session, then resumed: its writes are rejected, it steps down."""
    lead = Leadership(h.events)
    nodes = NodeStates(h.faults)
    failures: list[str] = []
    notes: list[str] = []
    measured: list[float] = []
    for f in h.faults:
        old = lead.leader_at(f.ts) if f.action == "pause" else None
        if old is None or old.node != f.node:
            continue
        resumed = nodes.next_up(f.node, f.ts)
        new = lead.next_after(f.ts, old.epoch or 0)
        if resumed is None or new is None or new.ts > resumed.ts:
            paused_s = _s(f.ts, resumed.ts) if resumed else None
            line = f"leader {f.node} paused at {f.ts:%H:%M:%S}: no takeover while paused"
            if paused_s is not None and paused_s > b.paused_takeover_s:
                failures.append(f"{line} for {paused_s:.1f} s (bound {b.paused_takeover_s} s)")
            else:
                notes.append(line)
            continue
        what = f"leader {old.actor} (epoch {old.epoch}) paused, epoch {new.epoch} taken"
        stale = [
            e for e in h.events if e.is_scheduler_write and e.epoch == old.epoch and e.id > new.id
        ]
        failures += [f"{what}: its {e.kind} (event {e.id}) was accepted" for e in stale]
        fenced = _stepped_down(h.events, old, resumed.ts)
        if fenced is None or _s(resumed.ts, fenced.ts) > b.step_down_s:
            failures.append(f"{what}: no leader.fenced_out within {b.step_down_s} s of resume")
            continue
        measured.append(_s(resumed.ts, fenced.ts))
        notes.append(f"{what}: fenced out {measured[-1]:.3f} s after resume, no stale write")
    return _verdict(
        "P7",
        "paused leader is fenced out when it resumes",
        failures,
        notes,
        bool(measured) or bool(failures),
        {"step_down_s": measured} if measured else {},
    )


def _stepped_down(events: Iterable[Event], old: Event, after: datetime) -> Event | None:
    return next(
        (
            e
            for e in sorted(events, key=lambda e: e.ts)
            if e.kind == "leader.fenced_out"
            and e.epoch == old.epoch
            and e.actor == old.actor
            and e.ts >= after
        ),
        None,
    )


# -- P8 -------------------------------------------------------------------------------------


def check_p8(h: History, b: Bounds) -> Verdict:
    """One webserver killed: no request through haproxy fails once the check dropped it."""
    web_faults = [
        f for f in h.faults if h.nodes.get(f.node) == "master" and f.action in DOWN_ACTIONS
    ]
    failures: list[str] = []
    drops: dict[int, float] = {i: 0.0 for i in range(len(web_faults))}
    for r in (r for r in h.requests if not r.ok):
        window = [
            (i, f)
            for i, f in enumerate(web_faults)
            if f.ts <= r.ts and _s(f.ts, r.ts) <= b.lb_drop_s
        ]
        if not window:
            failures.append(f"request at {r.ts:%H:%M:%S.%f} failed ({r.status} {r.error})")
            continue
        i, f = window[-1]
        drops[i] = max(drops[i], _s(f.ts, r.ts))
    ok = sum(1 for r in h.requests if r.ok)
    notes = [f"{ok} of {len(h.requests)} requests through haproxy succeeded"]
    exercised = bool(web_faults) and bool(h.requests)
    measures = {"lb_failing_s": list(drops.values())} if exercised else {}
    return _verdict(
        "P8", "webserver killed: haproxy drops it", failures[:20], notes, exercised, measures
    )


# -- P9 -------------------------------------------------------------------------------------


def check_p9(h: History, b: Bounds) -> Verdict:
    """Cron runs across failovers: each due run created once, within takeover + 1 s."""
    lead = Leadership(h.events)
    nodes = NodeStates(h.faults)
    failures: list[str] = []
    delays: list[float] = []
    for dag_id, dues in h.due.items():
        runs = [r for r in h.runs if r.dag_id == dag_id and r.run_type == "scheduled"]
        failures += _missed_and_extra(dag_id, dues, runs)
        created = {r.scheduled_fire_at: r.created_at for r in runs if r.scheduled_fire_at}
        for due in dues:
            if due not in created:
                continue
            delay = _s(due, created[due])
            allowed = b.cron_slack_s + _leaderless_for(due, lead, nodes)
            delays.append(delay)
            if delay < 0 or delay > allowed:
                failures.append(
                    f"{dag_id} run due {due:%H:%M:%S} created after {delay:.3f} s "
                    f"(allowed 0 to {allowed:.3f} s)"
                )
    total = sum(len(d) for d in h.due.values())
    return _verdict(
        "P9",
        "cron runs across failovers: once each, on time",
        failures,
        [f"{total} due runs checked"],
        total > 0,
        {"cron_delay_s": delays} if delays else {},
    )


def _missed_and_extra(dag_id: str, dues: tuple[datetime, ...], runs: list[Run]) -> list[str]:
    out: list[str] = []
    fires = Counter(r.scheduled_fire_at for r in runs)
    out += [f"{dag_id}: run due {d:%Y-%m-%d %H:%M:%S} missed" for d in dues if fires[d] == 0]
    out += [f"{dag_id}: run due {d} created {n} times" for d, n in fires.items() if n > 1]
    if dues:
        window = (min(dues), max(dues))
        out += [
            f"{dag_id}: extra run {r.run_id} for {r.scheduled_fire_at}, which was not due"
            for r in runs
            if r.scheduled_fire_at is not None
            and window[0] <= r.scheduled_fire_at <= window[1]
            and r.scheduled_fire_at not in set(dues)
        ]
    intervals = Counter(
        (r.data_interval_start, r.data_interval_end) for r in runs if r.data_interval_end
    )
    out += [
        f"{dag_id}: data interval {k[0]}..{k[1]} ran {n} times"
        for k, n in intervals.items()
        if n > 1
    ]
    return out


def _leaderless_for(due: datetime, lead: Leadership, nodes: NodeStates) -> float:
    """How long after `due` the cluster waited for a leader (0 if one was up at `due`)."""
    current = lead.leader_at(due)
    if current is not None and not nodes.down_at(current.node, due):
        return 0.0
    nxt = lead.next_after(due)
    return _s(due, nxt.ts) if nxt is not None else 0.0


# -- all ------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[History, Bounds], Verdict]] = {
    "P1": check_p1,
    "P2": check_p2,
    "P3": check_p3,
    "P4": check_p4,
    "P5": check_p5,
    "P6": check_p6,
    "P7": check_p7,
    "P8": check_p8,
    "P9": check_p9,
}


def check(
    h: History, props: Iterable[str] = tuple(CHECKS), bounds: Bounds | None = None
) -> list[Verdict]:
    """Judge each property named in `props` on `h`."""
    b = bounds or Bounds()
    return [CHECKS[p](h, b) for p in props]
