"""Broker restart: Redis (append-only file on its data volume) is stopped gracefully and started
again while attempts are queued and running.

Proves P4: every run reaches a terminal state (attempts published before the restart are
delivered from the persisted queue or re-published after `[scheduler] queued_timeout`; workers
reconnect), with P1 and P5 (a redelivered message fails its claim, nothing runs twice).
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=3)
    drill.attempt_running_on("worker1", timeout_s=60)
    drill.say("restarting the broker with attempts queued and running")
    drill.faults.restart("broker")
    time.sleep(2.0)
    drill.trigger("chaos_work", runs=1)


SCENARIO = Scenario(
    name="broker-restart",
    description="restart the broker while attempts are queued and running",
    properties=("P1", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=6, seconds=2.0)},
    masters=2,
    workers=1,
    settle_s=150.0,
)
