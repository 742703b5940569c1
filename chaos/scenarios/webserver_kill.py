"""Webserver killed behind haproxy: a prober sends GET /ready through `lb` every 50 ms and
records each request's start time and result in the cluster's `requests.jsonl`; the standby
master's node (its webserver with it) is SIGKILLed, later restarted.

Proves P8: no request fails once haproxy's health check (every 0.5 s, down after 2 failures)
has dropped the dead server, bound 3 s after the kill; requests keep succeeding while the node
comes back (it is used again only once its /ready answers). Also P1 and P4.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

BEFORE_S = 3.0
DOWN_S = 8.0
AFTER_S = 5.0


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=1)
    with drill.prober("/ready") as prober:
        time.sleep(BEFORE_S)
        victim = drill.standby()
        drill.say(f"killing {victim} (webserver and standby scheduler) behind haproxy")
        drill.faults.kill(victim, "KILL")
        time.sleep(DOWN_S)
        drill.restore()  # the node comes back; haproxy adds it once /ready answers twice
        time.sleep(AFTER_S)
    drill.say(f"prober: {prober.sent} requests, {prober.failed} failed")


SCENARIO = Scenario(
    name="webserver-kill",
    description="SIGKILL a master (its webserver) behind haproxy while a prober sends requests",
    properties=("P1", "P4", "P8"),
    schedule=schedule,
    dags={"chaos_work.py": dag_source("chaos_work", tasks=2, seconds=1.0)},
    masters=2,
    workers=1,
    webserver=True,
)
