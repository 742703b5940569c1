"""What the runner makes of a sensor's poke (`haflow.dag.sensors`): done, not yet, or failed.

The attempt's process pokes once and writes its answer (`AttemptFiles.write_poke`). The
runner then judges it: the condition held, the sensor succeeds; its timeout (counted from the
first poke, across reschedules) has passed, it fails; otherwise it pokes again after
`poke_interval`: in the same attempt (`poke` mode, holding the slot) or in a new attempt
queued by the leader when due (`reschedule` mode: this attempt ends `rescheduled`). A check of
another DAG's run is made here, with the worker's metastore access, never in the task's
process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from haflow.metastore.records import ClaimedAttempt
from haflow.worker.files import AttemptFiles

ExternalState = Callable[[str, str | None, datetime, datetime], str | None]
"""(DAG id, task id or None, interval start, interval end) -> the state of that DAG's run for
that interval (or of its task), None when there is no such run (the repository's
`runs.external_state`)."""


class SensorFailed(Exception):
    """The sensor fails now: timed out, or what it waits for failed."""


@dataclass(frozen=True)
class Poke:
    done: bool
    poke_interval_s: float
    timeout_s: float
    mode: str
    external: dict[str, Any] | None

    @property
    def reschedules(self) -> bool:
        return self.mode == "reschedule"


def read_poke(files: AttemptFiles) -> Poke | None:
    """The poke the attempt's process wrote, None if it is no sensor; read once."""
    try:
        body = json.loads(files.poke.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    files.poke.unlink()
    return Poke(
        bool(body["done"]),
        float(body["poke_interval"]),
        float(body["timeout"]),
        str(body["mode"]),
        body.get("external"),
    )


def judge(
    poke: Poke,
    c: ClaimedAttempt,
    since: datetime,
    now: datetime,
    external: ExternalState | None,
    say: Callable[[str], None],
) -> bool:
    """True when the sensor's condition holds; False to poke again; SensorFailed when it
    must fail now (its timeout passed since `since`, or what it waits for failed). `say`
    writes to the attempt's log."""
    done = poke.done
    if poke.external is not None:
        done = _external_done(poke.external, c, external, say)
    if done:
        return True
    waited = (now - since).total_seconds()
    if waited >= poke.timeout_s:
        raise SensorFailed(
            f"sensor timed out: its condition did not hold within its timeout of "
            f"{poke.timeout_s:g} s (poking since {since.isoformat()})"
        )
    return False


def _external_done(
    spec: dict[str, Any],
    c: ClaimedAttempt,
    state_of: ExternalState | None,
    say: Callable[[str], None],
) -> bool:
    dag_id, task_id = spec["external_dag_id"], spec.get("external_task_id")
    what = f"DAG {dag_id!r}" + (f" task {task_id!r}" if task_id else "")
    if state_of is None:
        raise SensorFailed(f"cannot check {what} here: it needs the metastore (run it on a worker)")
    if c.data_interval_start is None or c.data_interval_end is None:
        raise SensorFailed(
            f"an ExternalRunSensor waits for {what} over the same data interval; this run "
            f"({c.run_id}) has none (a manual run): trigger it on the schedule"
        )
    shift = timedelta(seconds=float(spec.get("execution_delta_s") or 0))
    start, end = c.data_interval_start - shift, c.data_interval_end - shift
    state = state_of(dag_id, task_id, start, end)
    say(f"[haflow: {what} for {start.isoformat()} .. {end.isoformat()}: {state or 'no run'}]")
    if state in spec.get("failed_states", []):
        raise SensorFailed(f"{what} for the interval ending {end.isoformat()} is {state}")
    return state in spec.get("allowed_states", [])
