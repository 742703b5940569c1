"""A minutely cron DAG across repeated leader failovers: each round kills the leader (SIGKILL,
then SIGTERM on the next round, and so on) 1.5 s before a minute falls due, so the run that falls
due is created by whoever takes over.

Proves P9 from the runs created (never the scheduler's own claim): every minute that fell due
between the first round and the judging has exactly one run, no data interval twice, none
missed, each created within the takeover time + 1 s of its due time. With P1, P2, P4, P5.
One round takes about a minute (it waits for the next minute's boundary, and judges that
minute's run in the same round): `--repeat 1` is the bounded CI variant, `--repeat 5` the soak.
"""

from __future__ import annotations

import itertools

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

CRON = "* * * * *"
SIGNALS = itertools.cycle(["KILL", "TERM"])


def schedule(drill: Drill) -> None:
    drill.wait("the cron DAG to be parsed", lambda: drill.repo.dags.get("chaos_cron"), 60)
    signal = next(SIGNALS)
    drill.sleep_until_second(58.5)
    node, epoch = drill.leader()
    drill.say(f"SIG{signal} to leader {node} (epoch {epoch}) 1.5 s before a minute falls due")
    drill.faults.kill(node, signal)
    new, new_epoch = drill.wait_new_leader(epoch, timeout_s=60)
    drill.say(f"{new} leads epoch {new_epoch}")
    # judge this round's due minute in this round: wait past it by the takeover slack
    drill.sleep_until_second(5.0)


SCENARIO = Scenario(
    name="cron-failover",
    description="a minutely cron DAG while the leader is killed just before each minute",
    properties=("P1", "P2", "P4", "P5", "P9"),
    schedule=schedule,
    dags={"chaos_cron.py": dag_source("chaos_cron", tasks=1, seconds=1.0, schedule=CRON)},
    masters=2,
    workers=1,
    cron={"chaos_cron": CRON},
)
