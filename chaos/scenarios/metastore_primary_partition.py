"""Metastore primary partitioned: the PostgreSQL primary's node is cut off every node (haflow's
masters and workers, ZooKeeper, its standby) while runs are in flight, then healed.

Its Patroni cannot renew the leader key, so it demotes itself; the standby is promoted once
the key expires (Patroni's TTL, 20 s). haflow's connections to the cut-off primary get no
answer at all (no reset): libpq's keepalive and TCP user timeouts end them, and every daemon
reconnects to the member that accepts writes. After the heal the old primary rejoins as a
standby. Proves P14 (nothing acknowledged lost, scheduling resumes within 15 s of the
promotion), with P1, P4 and P5.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    drill.attempt_running_on("worker1", timeout_s=60)
    primary = drill.lose_metastore_primary("partition")
    drill.trigger("chaos_work", runs=1)  # work that arrives after the failover
    drill.faults.heal(primary)


SCENARIO = Scenario(
    name="metastore-primary-partition",
    description="cut the metastore's PostgreSQL primary (Patroni) off every node mid-run; heal",
    properties=("P1", "P4", "P5", "P14"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
    ha_metastore=True,
    settle_s=180.0,
)
