"""One ZooKeeper member killed: the member that leads the ensemble is SIGKILLed while a
workload runs (the remaining two keep the quorum, after an ensemble election), then restarted.

Proves P4 (every run still reaches a terminal state), with P1 (one writer per epoch, however
often the scheduler's connection is SUSPENDED and resumed) and P5.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    member = drill.zk_leader()
    drill.say(f"killing ZooKeeper member {member} (the ensemble's leader)")
    drill.faults.kill(member, "KILL")
    for _ in range(3):  # keep work arriving while the ensemble runs on two members
        time.sleep(3.0)
        drill.trigger("chaos_work", runs=1)
    drill.faults.restart(member)


SCENARIO = Scenario(
    name="zk-member-kill",
    description="SIGKILL the ZooKeeper member leading the ensemble, then restart it",
    properties=("P1", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=1.0)},
    masters=2,
    workers=1,
)
