"""Callback failover: runs fail while a worker and then the leader are SIGKILLed, and every
failure is notified to a webhook receiver inside the cluster.

Proves P11 (every `ti.failed` and `run.failed` in the event log reached the receiver under
exactly one key, and no key was delivered for an event that did not happen, judged from the
receiver node's own records), and along the way P1 (one writer per epoch), P2 (a standby leads
within 5 s), P3 (the killed worker's attempts are reclaimed within 10 s), P4 (every run ends,
failed only by its tasks' own code) and P5 (no attempt twice).
"""

from __future__ import annotations

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.spec import receiver_url
from haflow.chaos.workload import dag_source


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_fail", runs=2)
    victim, attempt = drill.busy_worker(timeout_s=60)
    drill.say(f"killing {victim} running attempt {attempt.attempt} of {attempt.ti_id}")
    drill.landed(drill.faults.kill(victim, "KILL"), attempt)
    drill.wait(
        "a task failure to be notified",
        lambda: drill.repo.history.events(kinds=["notification.delivered"], limit=1),
        60,
    )
    node, epoch = drill.leader()
    drill.say(f"killing leader {node} (epoch {epoch}) while failures are being notified")
    drill.faults.kill(node, "KILL")
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")


SCENARIO = Scenario(
    name="callback-failover",
    description="runs fail and are notified while a worker and the leader are SIGKILLed",
    properties=("P1", "P2", "P3", "P4", "P5", "P11"),
    schedule=schedule,
    dags={"chaos_fail.py": dag_source("chaos_fail", tasks=6, seconds=3.0, work="recorded_failure")},
    masters=2,
    workers=2,
    receiver=True,
    settings={
        "HAFLOW__NOTIFICATIONS__WEBHOOK_URL": receiver_url(),
        "HAFLOW__NOTIFICATIONS__EVENTS": "ti.failed,run.failed",
        "HAFLOW__NOTIFICATIONS__RETRY_DELAY": "1",
        "HAFLOW__NOTIFICATIONS__TIMEOUT": "5",
    },
)
