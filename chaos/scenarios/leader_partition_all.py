"""Leader partitioned from everything: its node's network interface is disconnected (peers'
packets to it vanish without a reset), so it reaches neither ZooKeeper, PostgreSQL, the broker
nor the workers, and cannot say goodbye.

The server drops the vanished leader's lock session (`idle_session_timeout`, keepalives) and any
transaction it left open (`idle_in_transaction_session_timeout`), its ZooKeeper session expires,
and the standby takes over (P2, partition bound 11 s). Once healed, the old leader finds its
epoch gone: no write of it lands after the new epoch (P1) and it steps down. Also P4, P5.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    node, epoch = drill.leader()
    drill.say(f"cutting leader {node} (epoch {epoch}) off every node")
    drill.faults.partition(node)
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=40)
    drill.say(f"{new} leads epoch {new_epoch}")
    drill.trigger("chaos_work", runs=1)
    time.sleep(3.0)
    drill.faults.heal(node)
    drill.wait(
        f"{node} to stop leading epoch {epoch}",
        lambda: any(
            e.epoch == epoch
            for e in drill.repo.history.events(
                kinds=["leader.fenced_out", "leader.resigned"], limit=10_000
            )
        ),
        40,
    )


SCENARIO = Scenario(
    name="leader-partition-all",
    description="cut the leader off every node, then heal",
    properties=("P1", "P2", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
)
