"""P10: a DAG file that hangs at import (user input, not a fault) moves no leader and delays no
run triggered while it is in the shared folder."""

from __future__ import annotations

from haflow.chaos.checker.base import (
    DOWN_ACTIONS,
    UP_ACTIONS,
    Bounds,
    Leadership,
    Verdict,
    judge_starts,
    verdict,
)
from haflow.chaos.model import Fault, History

# -- P10 ------------------------------------------------------------------------------------


def check_p10(h: History, b: Bounds) -> Verdict:
    """A DAG file that hangs at import, dropped into the shared folder, is user input, not a
    fault: no new leader is elected while it is there (until it is removed or another fault
    comes), and runs triggered meanwhile start within `poison_start_s`."""
    lead = Leadership(h.events)
    failures: list[str] = []
    notes: list[str] = []
    measured: list[float] = []
    for f in h.faults:
        if f.action != "poison":
            continue
        what = f"{f.detail.get('file')} dropped at {f.ts:%H:%M:%S.%f}"
        until = next((g.ts for g in h.faults if g.ts > f.ts and _ends_poison(f, g)), None)
        old = lead.leader_at(f.ts)
        if old is None:
            failures.append(f"{what}: no leader to judge")
            continue
        new = lead.next_after(f.ts, old.epoch or 0)
        moved = new is not None and (until is None or new.at <= until)
        if new is not None and moved:
            failures.append(
                f"{what}: leadership moved from {old.actor} (epoch {old.epoch}) to "
                f"{new.actor} (epoch {new.epoch}) at {new.at:%H:%M:%S.%f}"
            )
        kept = "" if moved else f"epoch {old.epoch} kept; "
        measured += judge_starts(
            h, f.ts, until, what, b.poison_start_s, failures, notes, prefix=kept
        )
    return verdict(
        "P10",
        "a DAG file that hangs at import moves no leader and delays no run",
        failures,
        notes,
        bool(measured) or bool(failures),
        {"poison_start_delay_s": measured} if measured else {},
    )


def _ends_poison(poison: Fault, g: Fault) -> bool:
    """Whether `g` ends the window in which `poison` is judged: its file removed, or a fault."""
    if g.action == "cure":
        return g.detail.get("file") == poison.detail.get("file")
    return g.action in DOWN_ACTIONS or g.action in UP_ACTIONS
