"""Webserver killed behind haproxy: a prober sends GET /ready through `lb` every 50 ms and
records each request's start time and result in the cluster's `requests.jsonl`; the standby
master's node (its webserver with it) is SIGKILLed, later restarted.

Proves P8: no request fails once haproxy's health check (every 0.5 s, down after 2 failures)
has dropped the dead server, bound 3 s after the kill; a request in flight when the kill
began counts as one the kill may fail. haproxy sends a GET cut by the dying server again, to
the other master (`retry-on`): before it did, about one round in three had a 502 within 0.1 s
of the kill. Also P1 and P4. The prober stops before
the node is restarted: P8 is about losing a webserver. (Measured once with the prober running
through the restart: one request timed out 2.3 s after the node came back, on this 2-core host
where the returning node boots four Python processes; returning nodes are not yet judged.)
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
    drill.say(f"prober: {prober.sent} requests, {prober.failed} failed")
    drill.restore()  # the node comes back; haproxy adds it once /ready answers twice
    time.sleep(AFTER_S)


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
