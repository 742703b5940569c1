"""DAG drift: a deploy reaches the leader's DAGs folder only, then the leader is SIGKILLed and
the master with the stale folder leads.

Each round deploys a new version of `chaos_drift` (one task more than the last) and a new DAG
to the leader alone, triggers runs, kills the leader, and triggers more on the stale master.
Workers have no DAGs folder at all. Proves P13: the DAG never goes back to the stale
master's version, every run carries the version its DAG had when it was created and has that
version's tasks, and every task ran its run's version (its own record names the hash it ran,
`$HAFLOW_CODE_HASH`); the DAG only the leader had stays and runs. Also P1, P2, P4 and P5.
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

DRIFT = "chaos_drift"


def _drift(tasks: int) -> str:
    return dag_source(DRIFT, tasks=tasks, seconds=1.0) + f"# version {tasks}\n"


def schedule(drill: Drill) -> None:
    leader, epoch = drill.leader()
    stale = drill.standby_of(leader)
    tasks = len(drill.repo.dags.versions(DRIFT)) + 1  # each version one task more
    new_dag = f"chaos_new{tasks}"
    files = {f"{DRIFT}.py": _drift(tasks), f"{new_dag}.py": dag_source(new_dag, tasks=1)}
    before = drill.repo.dags.get(DRIFT).code_hash
    drill.say(f"deploying {DRIFT} with {tasks} tasks and {new_dag} to {leader} alone")
    for name, source in files.items():
        drill.faults.deploy(leader, name, source)
    drill.wait(
        f"{leader} to store the new version and {new_dag}",
        lambda: drill.repo.dags.get(DRIFT).code_hash != before and _active(drill, new_dag),
        timeout_s=60.0,
    )
    drill.trigger(DRIFT, runs=2)
    drill.trigger(new_dag, runs=1)
    drill.say(f"killing leader {leader} (epoch {epoch}); {stale}'s folder is stale")
    drill.faults.kill(leader, "KILL")
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch} with a stale folder")
    drill.trigger(DRIFT, runs=2)
    drill.trigger(new_dag, runs=1)
    drill.wait_runs_done(120.0)
    drill.say(f"deploying the same files to {stale}: the folders agree again")
    for name, source in files.items():
        drill.faults.deploy(stale, name, source)


def _active(drill: Drill, dag_id: str) -> bool:
    return any(d.dag_id == dag_id for d in drill.repo.dags.all())


SCENARIO = Scenario(
    name="dag-drift",
    description="deploy a new DAG version to the leader alone, then SIGKILL it: the stale "
    "master must schedule the metastore's versions",
    properties=("P1", "P2", "P4", "P5", "P13"),
    schedule=schedule,
    dags={f"{DRIFT}.py": _drift(1)},
    masters=2,
    workers=2,
    settings={"HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1"},
)
