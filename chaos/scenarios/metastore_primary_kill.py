"""Metastore primary kill -9: the PostgreSQL primary's node (Patroni and PostgreSQL) is
SIGKILLed while runs are in flight; its synchronous standby is promoted once the dead
primary's leader key expires in ZooKeeper (Patroni's TTL, 20 s).

Proves P14 (every run, attempt and event the primary acknowledged before the kill is still
there; scheduling resumes within 15 s of the promotion; every execution the tasks recorded is
an attempt the metastore knows), with P1 (one writer per epoch across the failover), P4 (every
run finishes: attempts cut off from the metastore are reclaimed and run again) and P5.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    drill.attempt_running_on("worker1", timeout_s=60)
    drill.lose_metastore_primary("kill")
    drill.trigger("chaos_work", runs=1)  # work that arrives after the failover


SCENARIO = Scenario(
    name="metastore-primary-kill",
    description="SIGKILL the metastore's PostgreSQL primary (Patroni) while runs are in flight",
    properties=("P1", "P4", "P5", "P14"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
    ha_metastore=True,
    settle_s=180.0,
)
