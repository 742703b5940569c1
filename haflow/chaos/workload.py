"""The chaos workload: DAGs whose tasks record their own execution on the node that runs them.

A task appends JSON lines to `$HAFLOW_CHAOS_RECORDS` (a folder of the host bind-mounted into
the node): `start`, a `tick` every `TICK_S` while it runs, `end`. The file outlives the node and
needs no network, so a task on a killed or cut-off worker still leaves its trace, and the last
`tick` of a killed task bounds when it stopped. The checker reads these records, never the
daemons' claims. haflow's own schema is untouched.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

RECORDS_ENV = "HAFLOW_CHAOS_RECORDS"
NODE_ENV = "HAFLOW_CHAOS_NODE"
TICK_S = 0.2
BARRIER_DAG = "chaos_barrier"
"""The DAG whose runs `Drill.pause_mid_transaction` uses to hold the leader mid-transaction."""


def _record(context: dict[str, Any], kind: str) -> None:
    path = os.environ.get(RECORDS_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "dag_id": context["HAFLOW_DAG_ID"],
            "run_id": context["HAFLOW_RUN_ID"],
            "task_id": context["HAFLOW_TASK_ID"],
            "attempt": int(context["attempt"]),
            "node": os.environ.get(NODE_ENV, ""),
            "kind": kind,
            "ts": datetime.now(UTC).isoformat(),
            "code_hash": context.get("HAFLOW_CODE_HASH", ""),  # the code version it runs
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())  # one write per line: appends never interleave
    finally:
        os.close(fd)


def _ticking(ctx: dict[str, Any], seconds: float) -> None:
    """Record `start`, then a `tick` every TICK_S for `seconds`."""
    _record(ctx, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(TICK_S, max(0.0, deadline - time.monotonic())))
        _record(ctx, "tick")


def recorded_work(seconds: float, context: dict[str, Any] | None = None) -> None:
    """Work for `seconds`, recording start, ticks and end on this node."""
    ctx = context or {}
    _ticking(ctx, seconds)
    _record(ctx, "end")


def recorded_failure(seconds: float, context: dict[str, Any] | None = None) -> None:
    """Work for `seconds`, recording start and ticks, then fail (no `end`: the task's own
    code failed, which is how the checker tells it from a failure of the infrastructure)."""
    _ticking(context or {}, seconds)
    raise RuntimeError(f"the workload fails on purpose after {seconds} s")


def dag_source(
    dag_id: str,
    *,
    tasks: int = 1,
    seconds: float = 1.0,
    schedule: str | None = None,
    retries: int = 0,
    work: str = "recorded_work",
    pool: str | None = None,
) -> str:
    """The text of a DAG file: `tasks` independent recorded tasks of `seconds` each, doing
    `work` (`recorded_work`, or `recorded_failure` to fail at the end), in `pool` if given."""
    in_pool = f", pool={pool!r}" if pool else ""
    return f"""\
from datetime import datetime, timedelta

from haflow.chaos.workload import {work}
from haflow.dag import DAG, PythonTask

with DAG({dag_id!r}, schedule={schedule!r}, start_date=datetime(2026, 1, 1), catchup=False,
         max_active_runs=16, default_args={{"retries": {retries},
         "retry_delay": timedelta(seconds=1)}}):
    for i in range({tasks}):
        PythonTask(f"t{{i:03d}}", python_callable={work},
                   op_kwargs={{"seconds": {seconds}}}{in_pool})
"""


def barrier_dag_source() -> dict[str, str]:
    """The barrier DAG's file, to add to a scenario's `dags`: one instant recorded task."""
    return {f"{BARRIER_DAG}.py": dag_source(BARRIER_DAG, tasks=1, seconds=0.0)}
