"""Worker partitioned from ZooKeeper only, mid-task: DROP rules in the node of a worker running
attempts cut it off zk1..zk3 for 15 s (longer than the 6 s session, so its ZooKeeper node
vanishes), while it still reaches PostgreSQL and the broker.

The vanished node is only a hint: the worker's attempts keep heartbeating to the metastore, so
the leader reclaims none of them and they run to success on the cut-off worker (P3's
ZooKeeper-only case); no attempt is run twice or concurrently (P5); every run succeeds (P4).
Also P1.
"""

from __future__ import annotations

import time

from haflow.chaos.rounds import ZOOKEEPER
from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_long", runs=1)
    victim, attempt = drill.busy_worker(timeout_s=60)
    drill.say(f"cutting {victim} (running attempt {attempt.attempt}) off ZooKeeper for 15 s")
    drill.landed(drill.faults.partition(victim, ZOOKEEPER), attempt)
    time.sleep(15.0)
    drill.faults.heal(victim)


SCENARIO = Scenario(
    name="worker-partition-zk",
    description="cut a worker off ZooKeeper only while it runs tasks, then heal",
    properties=("P1", "P3", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_long.py": dag_source("chaos_long", tasks=4, seconds=20.0)},
    masters=2,
    workers=2,
)
