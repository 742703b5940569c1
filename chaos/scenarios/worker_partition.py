"""Worker partitioned mid-task: the node running an attempt is cut off every node (its task
keeps running, and keeps writing its own records to the host).

The worker cannot heartbeat, so it must kill its task itself after `timeout - margin` (self-
fencing), while the leader reclaims the attempt as lost and re-queues it on the other worker
(P3, within 10 s). The tasks' own records show the two attempts never overlapped (P5). After
the heal, the cut-off worker's late report is rejected. Also P1 and P4.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_long", runs=1)
    victim, attempt = drill.busy_worker(timeout_s=60)
    drill.say(f"cutting off {victim} running attempt {attempt.attempt} of {attempt.ti_id}")
    drill.landed(drill.faults.partition(victim), attempt)
    drill.wait(
        f"attempt {attempt.attempt + 1} of {attempt.ti_id} to be queued",
        lambda: any(
            a.attempt > attempt.attempt for a in drill.repo.history.attempts(attempt.ti_id)
        ),
        40,
    )
    time.sleep(5.0)  # the successor runs elsewhere while the victim is still cut off
    drill.faults.heal(victim)


SCENARIO = Scenario(
    name="worker-partition",
    description="cut a worker off every node while it runs a task, then heal",
    properties=("P1", "P3", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_long.py": dag_source("chaos_long", tasks=4, seconds=15.0)},
    masters=2,
    workers=2,
)
