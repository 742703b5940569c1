"""Leader paused mid-transaction past its session, then resumed (docker pause: every process
of the node frozen).

The leader is kept busy (several runs of many short tasks) and is frozen at a moment chosen by
a barrier, so the fault lands every time: a run of `chaos_barrier` is triggered while that DAG
is paused, its row is locked from the host, the DAG unpaused; the leader's next fenced
transaction locks the `leader` row and then waits on the run's row. PostgreSQL shows it so,
the node is frozen, and the barrier released (`Drill.pause_mid_transaction`). The frozen
transaction holds the row lock the next leader's `leadership.take` needs, so this is the case
where the server must end the frozen session (`idle_in_transaction_session_timeout` =
`[election] db_lock_timeout`, or the new leader's `pg_terminate_backend`) for a standby to lead.

Proves P7: a standby takes over while the leader is frozen (within the session, 6 s, plus P2's
5 s), and once thawed the old leader's writes under its old epoch are rejected (none is found
in the event log after the new epoch) and it records `leader.fenced_out`. Also P1, P4, P5.
"""

from __future__ import annotations

from haflow.chaos.rounds import pause_leader_mid_transaction
from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import barrier_dag_source, dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_many", runs=4)
    pause_leader_mid_transaction(drill)


SCENARIO = Scenario(
    name="leader-pause",
    description="freeze the leader inside a fenced transaction past its session, then thaw it",
    properties=("P1", "P4", "P5", "P7"),
    schedule=schedule,
    dags={
        "chaos_many.py": dag_source("chaos_many", tasks=60, seconds=0.0),
        **barrier_dag_source(),
    },
    masters=2,
    workers=1,
)
