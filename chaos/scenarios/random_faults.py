"""A random sequence of single-node faults during a 200-task workload, seeded (`--seed N`
reproduces the same sequence of fault kinds and targets; who leads when a fault strikes is
resolved at that moment).

Each round triggers 4 runs of 50 short tasks, then injects FAULTS faults drawn from the menu
below, restoring steady state after each. Judged over the whole history: P1 (one writer per
epoch), P2 (every leader kill or cut-off answered in time), P3 (attempts on a lost worker
reclaimed), P4 (every run ends), P5 (nothing twice, nothing concurrent), P7 (a paused leader
replaced, then fenced out).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from haflow.chaos import rounds
from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

FAULTS = 4
WORKERS = ("worker1", "worker2")
MENU: dict[str, Callable[[Drill], object]] = {
    "kill -9 leader": lambda d: rounds.kill_leader(d, "KILL"),
    "SIGTERM leader": lambda d: rounds.kill_leader(d, "TERM"),
    "kill -9 standby": lambda d: rounds.kill_and_restart(d, d.standby()),
    "pause leader": lambda d: rounds.pause_leader(d),
    "partition leader from ZooKeeper": lambda d: rounds.partition_leader_from_zookeeper(
        d, "chaos_tick"
    ),
    "kill -9 worker1": lambda d: rounds.kill_and_restart(d, "worker1", down_s=12.0),
    "kill -9 worker2": lambda d: rounds.kill_and_restart(d, "worker2", down_s=12.0),
    "partition worker1": lambda d: rounds.partition_worker(d, "worker1"),
    "partition worker2": lambda d: rounds.partition_worker(d, "worker2"),
    "kill -9 zk1": lambda d: rounds.kill_and_restart(d, "zk1"),
    "kill -9 zk2": lambda d: rounds.kill_and_restart(d, "zk2"),
    "kill -9 zk3": lambda d: rounds.kill_and_restart(d, "zk3"),
    "restart broker": lambda d: d.faults.restart("broker"),
}


def schedule(drill: Drill) -> None:
    plan = [drill.rng.choice(sorted(MENU)) for _ in range(FAULTS)]
    drill.say(f"fault plan: {plan}")
    drill.trigger("chaos_fleet", runs=4)
    for i, fault in enumerate(plan, 1):
        time.sleep(drill.rng.uniform(1.0, 4.0))
        drill.say(f"fault {i}/{len(plan)}: {fault}")
        MENU[fault](drill)
        drill.restore()


SCENARIO = Scenario(
    name="random-faults",
    description="a seeded random sequence of single-node faults during a 200-task workload",
    properties=("P1", "P2", "P3", "P4", "P5", "P7"),
    by_chance=("P2", "P3", "P7"),  # a seed whose plan holds no leader or worker fault
    schedule=schedule,
    dags={
        "chaos_fleet.py": dag_source("chaos_fleet", tasks=50, seconds=1.0, retries=1),
        "chaos_tick.py": dag_source("chaos_tick", tasks=1, seconds=0.2),
    },
    masters=2,
    workers=2,
    settle_s=240.0,
)
