"""Leader paused while its backend is idle inside a fenced transaction (between two
statements), past its session, then resumed: the case `idle_in_transaction_session_timeout`
(= `[election] db_lock_timeout`, 4 s) covers. Like `leader-pause` (the same barrier makes the
freeze land inside the transaction every time), but a freeze whose backend settles in any other
state (for instance `active`, mid-way through a pipelined `executemany`) is thawed at once and
tried again with a new barrier.

Proves P7 for this case: the server ends the frozen session, the standby takes the `leader` row
and leads while the old leader is still frozen, and the thawed leader is fenced out. With P1,
P4, P5.
"""

from __future__ import annotations

from haflow.chaos.rounds import pause_leader_mid_transaction
from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import barrier_dag_source, dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_many", runs=4)
    pause_leader_mid_transaction(drill, states=("idle in transaction",))


SCENARIO = Scenario(
    name="leader-pause-idle-tx",
    description="freeze the leader idle inside a fenced transaction past its session, then thaw",
    properties=("P1", "P4", "P5", "P7"),
    schedule=schedule,
    dags={
        "chaos_many.py": dag_source("chaos_many", tasks=60, seconds=0.0),
        **barrier_dag_source(),
    },
    masters=2,
    workers=1,
)
