"""P1 (one writer per epoch), P2 (takeover after a killed leader), P6 (fallback to the database
lock with ZooKeeper down) and P7 (a paused leader is fenced out), judged from fenced writes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from haflow.chaos.checker.base import (
    DOWN_ACTIONS,
    UP_ACTIONS,
    Bounds,
    Leadership,
    NodeStates,
    Verdict,
    judge_starts,
    secs,
    verdict,
    zookeeper_only,
)
from haflow.chaos.model import OBSERVE, Event, Fault, History

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
    return verdict(
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
    """Leader SIGKILLed: a standby schedules again within 5 s (SIGTERM: 1 s). A leader cut off
    by a partition (from ZooKeeper or from everything) is judged too, against its own bound."""
    lead = Leadership(h.events)
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {}
    for f in h.faults:
        if f.action not in ("kill", "partition") or h.nodes.get(f.node) != "master":
            continue
        old = lead.leader_at(f.ts)
        if old is None or old.node != f.node:
            continue
        if zookeeper_only(h, f):
            _judge_zk_cut(h, f, b, failures, notes, measures)
            continue
        key, what, bound = _takeover_kind(f, b)
        new = lead.next_after(f.ts, old.epoch or 0)
        if new is None:
            failures.append(f"leader {old.actor} {what} at {f.ts}: no new leader")
            continue
        took = secs(f.ts, new.at)
        measures.setdefault(key, []).append(took)
        line = (
            f"leader {f.node} (epoch {old.epoch}) {what} at {f.ts:%H:%M:%S.%f}: "
            f"{new.actor} leads epoch {new.epoch} after {took:.3f} s (bound {bound} s)"
        )
        (failures if took > bound else notes).append(line)
    exercised = bool(measures) or bool(failures)
    return verdict("P2", "leader lost: a standby leads", failures, notes, exercised, measures)


def _judge_zk_cut(
    h: History,
    f: Fault,
    b: Bounds,
    failures: list[str],
    notes: list[str],
    measures: dict[str, list[float]],
) -> None:
    """A leader cut off from ZooKeeper only: whoever leads (it, on its lock, or a standby),
    runs triggered while the cut lasts start within `zk_cut_pause_s`."""
    healed = NodeStates(h.faults).next_up(f.node, f.ts, "heal")
    what = f"leader {f.node} cut off from ZooKeeper at {f.ts:%H:%M:%S.%f}"
    until = healed.ts if healed else None
    delays = judge_starts(h, f.ts, until, what, b.zk_cut_pause_s, failures, notes)
    if delays:
        measures.setdefault("zk_cut_pause_s", []).append(max(delays))


def _takeover_kind(f: Fault, b: Bounds) -> tuple[str, str, float]:
    """(measure name, description, bound) of a fault that takes a leader away."""
    if f.action == "partition":
        peers = f.detail.get("peers") or []
        cut = f"from {', '.join(peers)}" if peers else "from every node"
        return "takeover_partition_s", f"partitioned {cut}", b.partition_takeover_s
    if f.signal == "TERM":
        return "takeover_term_s", "SIGTERM", b.takeover_term_s
    return "takeover_kill_s", f"SIG{f.signal}", b.takeover_kill_s


# -- P6 -------------------------------------------------------------------------------------


def check_p6(h: History, b: Bounds) -> Verdict:
    """Whole ZooKeeper ensemble down: scheduling continues on the database lock (runs triggered
    during the outage start within `fallback_s`), and no attempt is lost because of it."""
    failures: list[str] = []
    notes: list[str] = []
    measured: list[float] = []
    for down_at, up_at in _ensemble_outages(h):
        what = f"ensemble down at {down_at:%H:%M:%S.%f}"
        lost = [
            a
            for a in h.attempts
            if a.state == "lost"
            and a.ended_at is not None
            and a.ended_at >= down_at
            and (up_at is None or a.ended_at <= up_at + timedelta(seconds=b.fallback_s))
        ]
        failures += [
            f"{what}: attempt {a.attempt} of {'/'.join(a.ti)} lost ({a.reason})" for a in lost
        ]
        delays = judge_starts(
            h,
            down_at,
            up_at,
            what,
            b.fallback_s,
            failures,
            notes,
            during="during the outage",
            suffix="" if lost else "; no attempt lost",
        )
        if delays:
            measured.append(max(delays))
    return verdict(
        "P6",
        "ZooKeeper down: scheduling continues on the database lock, nothing lost",
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
    """Leader paused past its session, then resumed: a standby took over while it was frozen,
    its writes are rejected, and it steps down."""
    lead = Leadership(h.events)
    nodes = NodeStates(h.faults)
    failures: list[str] = []
    notes: list[str] = []
    measures: dict[str, list[float]] = {}
    for f in h.faults:
        old = lead.leader_at(f.ts) if f.action == "pause" else None
        if old is None or old.node != f.node:
            continue
        resumed = nodes.next_up(f.node, f.ts)
        new = lead.next_after(f.ts, old.epoch or 0)
        if resumed is None or new is None or new.at > resumed.ts:
            paused_s = secs(f.ts, resumed.ts) if resumed else None
            line = f"leader {f.node} paused at {f.ts:%H:%M:%S.%f}: no takeover while paused"
            if paused_s is not None and paused_s > b.paused_takeover_s:
                failures.append(f"{line} for {paused_s:.1f} s (bound {b.paused_takeover_s} s)")
            else:
                notes.append(f"{line} ({paused_s or 0:.3f} s)")
            continue
        took = secs(f.ts, new.at)
        measures.setdefault("paused_takeover_s", []).append(took)
        frozen = _frozen_transaction(h.faults, f, resumed)
        what = (
            f"leader {old.actor} (epoch {old.epoch}) paused{frozen}, epoch {new.epoch} "
            f"taken {took:.3f} s later (bound {b.paused_takeover_s} s)"
        )
        if took > b.paused_takeover_s:
            failures.append(f"{what}: takeover too slow")
        stale = [
            e for e in h.events if e.is_scheduler_write and e.epoch == old.epoch and e.id > new.id
        ]
        failures += [f"{what}: its {e.kind} (event {e.id}) was accepted" for e in stale]
        fenced = _stepped_down(h.events, old, resumed.ts)
        if fenced is None or secs(resumed.ts, fenced.at) > b.step_down_s:
            failures.append(f"{what}: no leader.fenced_out within {b.step_down_s} s of resume")
            continue
        measures.setdefault("step_down_s", []).append(secs(resumed.ts, fenced.at))
        notes.append(f"{what}; fenced out {secs(resumed.ts, fenced.at):.3f} s after resume")
    return verdict(
        "P7",
        "paused leader is replaced, then fenced out when it resumes",
        failures,
        notes,
        "step_down_s" in measures or bool(failures),
        measures,
    )


def _frozen_transaction(faults: Iterable[Fault], pause: Fault, resumed: Fault) -> str:
    """' inside a fenced transaction (...)' when the harness saw the paused node frozen with
    its transaction open on the `leader` row, else ''."""
    seen = next(
        (
            o
            for o in faults
            if o.action == OBSERVE
            and o.node == pause.node
            and pause.ts <= o.ts <= resumed.ts
            and o.detail.get("what") == "frozen_in_fenced_transaction"
        ),
        None,
    )
    if seen is None:
        return ""
    d = seen.detail
    return (
        f" inside a fenced transaction (backend {d.get('backend_pid')}, "
        f"{d.get('state')}, open since {d.get('xact_start')})"
    )


def _stepped_down(events: Iterable[Event], old: Event, after: datetime) -> Event | None:
    return next(
        (
            e
            for e in sorted(events, key=lambda e: e.at)
            if e.kind == "leader.fenced_out"
            and e.epoch == old.epoch
            and e.actor == old.actor
            and e.at >= after
        ),
        None,
    )
