"""Leader paused past its session, then resumed (docker pause: every process frozen).

Proves P7: a standby takes over while the leader is frozen; once thawed, the old leader's
writes under its old epoch are rejected (none is found in the event log after the new epoch)
and it records `leader.fenced_out` and steps down. Also judges P1, P4 and P5.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

SESSION_S = 6.0  # [election] zk_session_timeout, the default


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    node, epoch = drill.leader()
    drill.say(f"pausing leader {node} (epoch {epoch})")
    drill.faults.pause(node)
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=SESSION_S + 30)
    drill.say(f"{new} leads epoch {new_epoch}; resuming {node} after its session is gone")
    time.sleep(2.0)  # the frozen leader's session has expired: a clean "past its session"
    drill.faults.resume(node)
    drill.wait(
        f"{node} to record leader.fenced_out",
        lambda: any(
            e.epoch == epoch for e in drill.repo.events(kinds=["leader.fenced_out"], limit=10_000)
        ),
        30,
    )


SCENARIO = Scenario(
    name="leader-pause",
    description="freeze the leader past its ZooKeeper session, then thaw it",
    properties=("P1", "P4", "P5", "P7"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
)
