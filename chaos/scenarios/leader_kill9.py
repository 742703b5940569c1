"""Leader kill -9: the leader's whole node is SIGKILLed while a workload runs.

Proves P2 (a standby leads within 5 s, timed from the fault log to the next `leader.elected`),
and along the way P1 (one writer per epoch), P4 (every run finishes) and P5 (no attempt twice,
no task running concurrently with itself, from the tasks' own records).
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    node, epoch = drill.leader()
    drill.say(f"killing leader {node} (epoch {epoch})")
    drill.faults.kill(node, "KILL")
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")


SCENARIO = Scenario(
    name="leader-kill9",
    description="SIGKILL the leader's node while runs are in flight",
    properties=("P1", "P2", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
)
