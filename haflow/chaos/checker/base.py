"""What every property check shares: verdicts, bounds, and who led or was down when, read
from the recorded history (fenced elections in the event log, faults in the fault log)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from haflow.chaos.model import Event, Fault, History

DOWN_ACTIONS = frozenset({"kill", "pause", "partition", "stop"})
UP_ACTIONS = frozenset({"resume", "heal", "restart", "start"})

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_EXERCISED = "NOT_EXERCISED"


@dataclass(frozen=True)
class Bounds:
    """The targets of docs/design.md section 4 (defaults), and the checker's tolerances."""

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
    partition_takeover_s: float = 11.0
    """A leader cut off from ZooKeeper (or from everything) must have been replaced within:
    its session expires (6 s), or it resigns on its own timer, then P2's 5 s."""
    zk_cut_pause_s: float = 5.0
    """A leader cut off from ZooKeeper only pauses scheduling at most this long: runs triggered
    while it is cut off start within it."""
    poison_start_s: float = 5.0
    """While a DAG file that hangs at import is parsed, runs triggered start within this."""
    metastore_resume_s: float = 15.0
    """After the metastore's standby is promoted, a scheduler writes again within this."""
    fault_grace_s: float = 0.5
    """An attempt that ended on its own (not `lost`) within this long after a fault on its
    worker was not mid-task."""


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


def verdict(
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


def secs(a: datetime, b: datetime) -> float:
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
                self.ended.setdefault(e.epoch, e.at)
        self._times = sorted(e.at for e in self.elections)
        self._by_time = sorted(self.elections, key=lambda e: e.at)

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
        return next((e for e in self._by_time if e.at > ts and (e.epoch or 0) > epoch), None)

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


# -- scheduling as users see it -------------------------------------------------------------


def start_delays(
    h: History, since: datetime, until: datetime | None
) -> tuple[list[float], list[str]]:
    """For each run triggered in [since, until], how long until the scheduler started it (the
    commit of its `run.started`): the pause a user sees. Returns the delays and the runs never
    started."""
    started = {
        (e.dag_id, e.run_id): e.at
        for e in sorted(h.events, key=lambda e: e.id, reverse=True)
        if e.kind == "run.started"
    }
    delays: list[float] = []
    never: list[str] = []
    for r in h.runs:
        if r.created_at < since or (until is not None and r.created_at > until):
            continue
        at = started.get((r.dag_id, r.run_id))
        if at is None:
            never.append(f"{r.dag_id}/{r.run_id}")
        else:
            delays.append(max(0.0, secs(r.created_at, at)))
    return delays, never


def judge_starts(
    h: History,
    since: datetime,
    until: datetime | None,
    what: str,
    bound: float,
    failures: list[str],
    notes: list[str],
    *,
    during: str = "meanwhile",
    prefix: str = "",
    suffix: str = "",
) -> list[float]:
    """Runs triggered in [since, until] must each start within `bound` s: a run never started,
    no run triggered at all, or the slowest start past the bound is a failure, else a note.
    Returns the start delays measured."""
    delays, never = start_delays(h, since, until)
    failures += [f"{what}: run {r} triggered {during} never started" for r in never]
    if not delays:
        failures.append(f"{what}: no run was triggered {during} (nothing measured)")
        return []
    worst = max(delays)
    line = (
        f"{what}: {prefix}{len(delays)} runs triggered {during} started within {worst:.3f} s "
        f"(bound {bound} s){suffix}"
    )
    (failures if worst > bound else notes).append(line)
    return delays


def zookeeper_only(h: History, f: Fault) -> bool:
    """Whether `f` cuts its node off the ZooKeeper members only (it still reaches the rest)."""
    peers = f.detail.get("peers") or []
    return f.action == "partition" and bool(peers) and set(peers) <= set(h.nodes_of("zookeeper"))
