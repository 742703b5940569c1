"""P8: requests through haproxy survive a killed webserver."""

from __future__ import annotations

from datetime import timedelta

from haflow.chaos.checker.base import (
    DOWN_ACTIONS,
    Bounds,
    Verdict,
    secs,
    verdict,
)
from haflow.chaos.model import History

# -- P8 -------------------------------------------------------------------------------------


def check_p8(h: History, b: Bounds) -> Verdict:
    """One webserver killed: no request through haproxy fails once the check dropped it. A
    request the kill may fail is one still unanswered when the kill began (sent before it,
    answered after) or sent at most `lb_drop_s` after it."""
    web_faults = [
        f for f in h.faults if h.nodes.get(f.node) == "master" and f.action in DOWN_ACTIONS
    ]
    failures: list[str] = []
    drops: dict[int, float] = {i: 0.0 for i in range(len(web_faults))}
    for r in (r for r in h.requests if not r.ok):
        window = [
            (i, f)
            for i, f in enumerate(web_faults)
            if f.ts <= r.ts + timedelta(seconds=r.took_s) and secs(f.ts, r.ts) <= b.lb_drop_s
        ]
        if not window:
            failures.append(f"request at {r.ts:%H:%M:%S.%f} failed ({r.status} {r.error})")
            continue
        i, f = window[-1]
        drops[i] = max(drops[i], secs(f.ts, r.ts))  # 0 for one in flight at the kill
    ok = sum(1 for r in h.requests if r.ok)
    notes = [f"{ok} of {len(h.requests)} requests through haproxy succeeded"]
    exercised = bool(web_faults) and bool(h.requests)
    measures = {"lb_failing_s": list(drops.values())} if exercised else {}
    return verdict(
        "P8", "webserver killed: haproxy drops it", failures[:20], notes, exercised, measures
    )
