"""P11: every failure is notified, each exactly once by key, across failover and worker loss."""

from __future__ import annotations

from collections import defaultdict

from haflow.chaos.checker.base import DOWN_ACTIONS, Bounds, Verdict, secs, verdict
from haflow.chaos.model import Event, History

NOTIFIED = ("ti.failed", "run.failed")
"""The events the P11 scenarios send to the receiver (`[notifications] events`)."""

_Ident = tuple[str, str, str, str | None, int]


def check_p11(h: History, b: Bounds) -> Verdict:
    """Every `ti.failed` and `run.failed` of the event log (the state changes themselves, as
    committed) reached the receiver under one key, and no key stands for two events: the
    receiver may have been sent a notification more than once (a leader that died between
    delivering and recording it), never two keys for one event, and never a notification
    of an event that did not happen. Judged from the receiver node's own records."""
    events: dict[_Ident, Event] = {}
    for e in h.events:
        if e.kind in NOTIFIED and e.dag_id and e.run_id:
            run_event = e.kind.startswith("run.")
            gen = int(e.detail_dict().get("revision", 0)) if run_event else int(e.attempt or 0)
            events[(e.kind, e.dag_id, e.run_id, e.task_id if not run_event else None, gen)] = e
    keys: dict[_Ident, set[str]] = defaultdict(set)
    idents: dict[str, set[_Ident]] = defaultdict(set)
    first: dict[str, float] = {}
    for d in h.deliveries:
        run_event = d.event.startswith("run.")
        gen = int(d.revision or 0) if run_event else int(d.attempt or 0)
        ident = (d.event, d.dag_id, d.run_id, None if run_event else d.task_id, gen)
        keys[ident].add(d.key)
        idents[d.key].add(ident)
        happened = events.get(ident)
        if happened is not None and d.key not in first:
            first[d.key] = secs(happened.at, d.ts)
    failures: list[str] = []
    for ident in sorted(events, key=str):
        found = keys.get(ident, set())
        if len(found) != 1:
            failures.append(f"{_name(ident)}: delivered under {len(found)} keys, expected 1")
    for ident in sorted(set(keys) - set(events), key=str):
        failures.append(f"{_name(ident)}: delivered, but the event log has no such event")
    for key, seen in sorted(idents.items()):
        if len(seen) > 1:
            failures.append(f"key {key[:12]}… names {len(seen)} events")
    repeats = len(h.deliveries) - len(idents)
    notes = [
        f"{len(events)} failures in the event log, {len(idents)} keys delivered, "
        f"{repeats} deliveries repeated a key"
    ]
    faults = [f for f in h.faults if f.action in DOWN_ACTIONS]
    exercised = bool(events) and bool(faults)
    measures = {"notify_s": sorted(first.values())} if first else {}
    return verdict(
        "P11", "failures notified once by key", failures[:20], notes, exercised, measures
    )


def _name(ident: _Ident) -> str:
    kind, dag_id, run_id, task_id, gen = ident
    what = f"{dag_id}/{run_id}" + (f"/{task_id}#{gen}" if task_id else f" (revision {gen})")
    return f"{kind} of {what}"
