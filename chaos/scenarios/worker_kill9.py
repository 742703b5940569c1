"""Worker kill -9 mid-task: the node running an attempt is SIGKILLed.

Proves P3 (the attempt is reclaimed as lost and re-queued within 10 s of the fault), P4 (every
run finishes on the remaining worker) and P5 (the reclaimed attempt and its successor never ran
at the same time, from the tasks' own records on their nodes).
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_long", runs=1)
    victim, attempt = drill.busy_worker(timeout_s=60)
    drill.say(
        f"killing {victim} running attempt {attempt.attempt} of task instance {attempt.ti_id}"
    )
    drill.landed(drill.faults.kill(victim, "KILL"), attempt)


SCENARIO = Scenario(
    name="worker-kill9",
    description="SIGKILL a worker node while it runs a task",
    properties=("P1", "P3", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_long.py": dag_source("chaos_long", tasks=4, seconds=15.0)},
    masters=2,
    workers=2,
)
