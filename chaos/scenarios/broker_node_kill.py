"""Broker node kill -9: on a three-node RabbitMQ cluster whose queues are quorum queues, the node
that leads the `default` queue (its Raft leader) is SIGKILLed while attempts are queued and
running, then restarted.

The queue elects a new leader on the two nodes left; workers and the leader's publisher, given
every node (Celery's failover list), reconnect to them. Proves P4 (every run succeeds: nothing
published before the kill is lost, an attempt whose publish failed is published again), with
P1 and P5 (a message delivered again fails its claim, nothing runs twice).
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=3)
    drill.attempt_running_on("worker1", timeout_s=60)
    victim = drill.queue_leader("default")
    drill.say(f"killing {victim}, the leader of the default queue")
    drill.faults.kill(victim, "KILL")
    time.sleep(2.0)
    drill.trigger("chaos_work", runs=2)  # published while a node is down
    time.sleep(8.0)
    drill.faults.restart(victim)


SCENARIO = Scenario(
    name="broker-node-kill",
    description="SIGKILL the RabbitMQ node leading the default quorum queue mid-run; restart it",
    properties=("P1", "P4", "P5"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0)},
    masters=2,
    workers=1,
    ha_broker=True,
    settle_s=180.0,
)
