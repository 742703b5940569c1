"""The whole ZooKeeper ensemble down, then back: zk1..zk3 SIGKILLed while work keeps arriving,
restarted after 25 s.

Proves P6: after `[election] zk_fallback_after` without ZooKeeper the candidates compete on the
database lock alone, and a leader elected in `database` mode writes again within 15 s of the
last member going down. When the ensemble returns, leadership goes back to ZooKeeper's order
without a second leader (P1: one writer per epoch, no write of an old epoch after a newer one).
Also P4 and P5.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

ZOOKEEPER = ("zk1", "zk2", "zk3")
DOWN_S = 25.0


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=1)
    _, epoch = drill.leader()
    drill.say(f"killing the whole ZooKeeper ensemble (leader epoch {epoch})")
    for member in ZOOKEEPER:
        drill.faults.kill(member, "KILL")
    deadline = time.monotonic() + DOWN_S
    while time.monotonic() < deadline:  # work keeps arriving: the fallback leader queues it
        drill.trigger("chaos_work", runs=1)
        time.sleep(2.5)
    node, fallback_epoch = drill.leader()
    drill.say(f"{node} leads epoch {fallback_epoch}; restarting the ensemble")
    for member in ZOOKEEPER:
        drill.faults.restart(member)
    drill.wait(
        "the leader to be elected in zookeeper mode again",
        lambda: (row := drill.repo.leader()) is not None and row.elector_mode == "zookeeper",
        60,
    )
    drill.trigger("chaos_work", runs=1)


SCENARIO = Scenario(
    name="zk-ensemble-down",
    description="kill every ZooKeeper member for 25 s, then bring the ensemble back",
    properties=("P1", "P4", "P5", "P6"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=2, seconds=1.0)},
    masters=2,
    workers=1,
)
