"""The whole ZooKeeper ensemble down, then back: zk1..zk3 SIGKILLed for 60 s while 10-second
tasks run and a new run arrives every 10 s, then restarted.

Proves P6: the leader keeps leading on the database lock it holds (the standbys would compete
on it after `[election] zk_fallback_after`), every run triggered during the outage starts
within 15 s, and no attempt is lost: workers never stop an attempt for losing ZooKeeper, and
the leader never reclaims one whose metastore heartbeat is fresh. P4 (strengthened): every run
succeeds. When the ensemble returns, leadership follows ZooKeeper's order again without a
second leader (P1). Also P5.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

ZOOKEEPER = ("zk1", "zk2", "zk3")
DOWN_S = 60.0


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=1)
    node, epoch = drill.leader()
    drill.say(f"killing the whole ZooKeeper ensemble ({node} leads epoch {epoch})")
    for member in ZOOKEEPER:
        drill.faults.kill(member, "KILL")
    # work keeps arriving meanwhile, as fast as the worker (2 slots) runs it: 2 tasks of 10 s
    n = drill.trickle("chaos_work", DOWN_S, every_s=10.0)
    node, epoch = drill.leader()
    drill.say(f"{node} leads epoch {epoch}; {n} runs triggered; restarting the ensemble")
    for member in ZOOKEEPER:
        drill.faults.restart(member)
    drill.trigger("chaos_work", runs=1)


SCENARIO = Scenario(
    name="zk-ensemble-down",
    description="kill every ZooKeeper member for 60 s, then bring the ensemble back",
    properties=("P1", "P4", "P5", "P6"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=2, seconds=10.0)},
    masters=2,
    workers=1,
)
