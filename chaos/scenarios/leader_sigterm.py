"""Leader SIGTERM: the leader's node is asked to stop (its daemons get SIGTERM).

Proves P2's graceful bound (a standby leads within 1 s of the signal: the leader finishes its
transaction, resigns, and the next candidate takes the freed lock), with P1, P4 and P5.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    node, epoch = drill.leader()
    drill.say(f"SIGTERM to leader {node} (epoch {epoch})")
    drill.faults.kill(node, "TERM")
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")


SCENARIO = Scenario(
    name="leader-sigterm",
    description="SIGTERM the leader's node while runs are in flight",
    properties=("P1", "P2", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
)
