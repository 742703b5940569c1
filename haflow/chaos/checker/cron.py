"""P9: cron runs across failovers, each due run created once, on time."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from haflow.chaos.checker.base import (
    Bounds,
    Leadership,
    NodeStates,
    Verdict,
    secs,
    verdict,
)
from haflow.chaos.model import History, Run

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
            delay = secs(due, created[due])
            allowed = b.cron_slack_s + _leaderless_for(due, lead, nodes)
            delays.append(delay)
            if delay < 0 or delay > allowed:
                failures.append(
                    f"{dag_id} run due {due:%H:%M:%S} created after {delay:.3f} s "
                    f"(allowed 0 to {allowed:.3f} s)"
                )
    total = sum(len(d) for d in h.due.values())
    return verdict(
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
    return secs(due, nxt.at) if nxt is not None else 0.0
