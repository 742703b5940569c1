"""Judge the availability properties P1..P14 (docs/design.md section 4) from a recorded history.

Pure functions over `haflow.chaos.model.History`: no docker, no SQL, no clock. Each check
returns a `Verdict` (PASS, FAIL, or NOT_EXERCISED when the history holds no fault that puts the
property to the test) with the evidence it found and the times it measured. The checker never
trusts a daemon's claim about itself: leadership is read from fenced writes in the event log,
execution from the tasks' own records, faults from the fault log.
"""

from collections.abc import Callable, Iterable

from haflow.chaos.checker.base import (
    DOWN_ACTIONS,
    TERMINAL_RUN_STATES,
    UP_ACTIONS,
    Bounds,
    Leadership,
    NodeStates,
    Status,
    Verdict,
)
from haflow.chaos.checker.cron import check_p9
from haflow.chaos.checker.dag_files import check_p10
from haflow.chaos.checker.leadership import check_p1, check_p2, check_p6, check_p7
from haflow.chaos.checker.metastore import check_p14
from haflow.chaos.checker.notifications import check_p11
from haflow.chaos.checker.pools import check_p12
from haflow.chaos.checker.tasks import check_p3, check_p4, check_p5
from haflow.chaos.checker.versions import check_p13
from haflow.chaos.checker.webserver import check_p8
from haflow.chaos.model import History

__all__ = [
    "CHECKS",
    "DOWN_ACTIONS",
    "TERMINAL_RUN_STATES",
    "UP_ACTIONS",
    "Bounds",
    "Leadership",
    "NodeStates",
    "Status",
    "Verdict",
    "check",
    "check_p1",
    "check_p2",
    "check_p3",
    "check_p4",
    "check_p5",
    "check_p6",
    "check_p7",
    "check_p8",
    "check_p9",
    "check_p10",
    "check_p11",
    "check_p12",
    "check_p13",
    "check_p14",
]

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
    "P10": check_p10,
    "P11": check_p11,
    "P12": check_p12,
    "P13": check_p13,
    "P14": check_p14,
}


def check(
    h: History, props: Iterable[str] = tuple(CHECKS), bounds: Bounds | None = None
) -> list[Verdict]:
    """Judge each property named in `props` on `h`."""
    b = bounds or Bounds()
    return [CHECKS[p](h, b) for p in props]
