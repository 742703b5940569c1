"""Pool failover: tasks of two DAGs share a pool of 2 slots while a worker running one of them
and then the leader are SIGKILLed.

Proves P12 (the pool never has more than 2 attempts running at once, judged from the tasks'
own records on their nodes: the lost attempt's last tick against its successor's start, and
the new leader's queueing against what the old one left in flight), and along the way P1 (one
writer per epoch), P2 (a standby leads within 5 s), P4 (every run succeeds) and P5 (no attempt
twice). Not P3: the killed worker's attempt is reclaimed in time, but its retry waits for a
free slot of the full pool, as it should, so "re-queued within 10 s" does not apply here.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source
from haflow.core.clock import utcnow

POOL, SLOTS = "chaos_pool", 2


def schedule(drill: Drill) -> None:
    drill.repo.pools.set(POOL, SLOTS, utcnow(), "the pool-failover scenario's")
    drill.trigger("chaos_pooled", runs=1)
    drill.trigger("chaos_pooled_too", runs=1)
    victim, attempt = drill.busy_worker(timeout_s=60)
    drill.say(f"killing {victim} running attempt {attempt.attempt} of {attempt.ti_id}")
    drill.landed(drill.faults.kill(victim, "KILL"), attempt)
    node, epoch = drill.leader()
    drill.say(f"killing leader {node} (epoch {epoch}) while the pool is full")
    drill.faults.kill(node, "KILL")
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")


SCENARIO = Scenario(
    name="pool-failover",
    description="a pool of 2 shared by two DAGs while a worker and the leader are SIGKILLed",
    properties=("P1", "P2", "P4", "P5", "P12"),
    schedule=schedule,
    dags={
        "chaos_pooled.py": dag_source("chaos_pooled", tasks=6, seconds=3.0, pool=POOL),
        "chaos_pooled_too.py": dag_source("chaos_pooled_too", tasks=3, seconds=3.0, pool=POOL),
    },
    masters=2,
    workers=2,
)
