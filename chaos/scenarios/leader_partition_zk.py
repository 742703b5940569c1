"""Leader partitioned from ZooKeeper only: DROP rules in the leader's node cut it off zk1..zk3
for 12 s while it still reaches PostgreSQL, the broker and the workers; a run is triggered
every half second meanwhile.

The cut-off leader keeps leading on the database lock it holds, without a pause (see
`haflow.election.policy`): ZooKeeper may put the standby first once the leader's session
expires, but the standby cannot take the lock while it is held, so one writer per epoch holds
(P1). P2 judges the pause users see: every run triggered while the leader is cut off starts
within 5 s. After the heal the old leader rejoins ZooKeeper's order. Also P4 and P5 on a
workload that keeps running throughout.
"""

from __future__ import annotations

from haflow.chaos.rounds import partition_leader_from_zookeeper
from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    partition_leader_from_zookeeper(drill, "chaos_tick", hold_s=12.0)


SCENARIO = Scenario(
    name="leader-partition-zk",
    description="cut the leader off ZooKeeper only (it still reaches the database)",
    properties=("P1", "P2", "P4", "P5"),
    schedule=schedule,
    dags={
        "chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0),
        "chaos_tick.py": dag_source("chaos_tick", tasks=1, seconds=0.2),
    },
    masters=2,
    workers=1,
)
