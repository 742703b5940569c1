"""Leader partitioned from ZooKeeper only: DROP rules in the leader's node cut it off zk1..zk3
while it still reaches PostgreSQL, the broker and the workers.

On SUSPENDED the leader stops writing at once; it may keep the database lock, and only the lock
holder leads, so the standby (which ZooKeeper now puts first) cannot become a second leader. The
checker finds who led next and when (P2, partition bound: the session, 6 s, then P2's 5 s) and
that no write of the old epoch landed after a newer epoch was taken (P1). After the heal the old
leader rejoins as a candidate. Also P4 and P5 on a workload that keeps running throughout.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

ZOOKEEPER = ("zk1", "zk2", "zk3")


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    node, epoch = drill.leader()
    drill.say(f"cutting leader {node} (epoch {epoch}) off ZooKeeper only")
    drill.faults.partition(node, ZOOKEEPER)
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=40)
    drill.say(f"{new} leads epoch {new_epoch}")
    drill.trigger("chaos_work", runs=1)  # work for whoever leads while the cut lasts
    time.sleep(4.0)
    drill.faults.heal(node)


SCENARIO = Scenario(
    name="leader-partition-zk",
    description="cut the leader off ZooKeeper only (it still reaches the database)",
    properties=("P1", "P2", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
)
