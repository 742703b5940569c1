"""Poison DAG: a DAG file whose top level hangs (sleeps 45 s, past the 30 s
`[core] dag_file_import_timeout`) is dropped into the DAGs folder both masters share, under load.

Proves P10: the file is parsed in a child process on each master and killed at its timeout, so
the leader keeps its epoch and runs of other DAGs triggered every half second meanwhile start
within 5 s; the file shows as an import error. Also P4 (no run of another DAG fails: workers
import only the file of the attempt's own DAG), P1 and P5.
"""

from __future__ import annotations

import time

from haflow.chaos.scenario import Drill, Scenario
from haflow.chaos.workload import dag_source

POISON = "import time\n\ntime.sleep(45)  # past [core] dag_file_import_timeout\n"


def schedule(drill: Drill) -> None:
    drill.trigger("chaos_work", runs=2)
    name = f"poison_{time.time_ns()}.py"
    drill.say(f"dropping {name}, which hangs at import, into the shared DAGs folder")
    drill.faults.poison(name, POISON)
    started = drill.trickle("chaos_tick", for_s=40.0, every_s=0.5)
    drill.say(f"{started} runs of chaos_tick triggered while it was parsed")
    drill.wait(
        f"{name} to show as an import error that names its timeout",
        lambda: any(
            e.fileloc.endswith(name) and "timed out" in e.message
            for e in drill.repo.dags.import_errors()
        ),
        timeout_s=30.0,
    )
    drill.faults.cure(name)


SCENARIO = Scenario(
    name="poison-dag",
    description="drop a DAG file that hangs at import into the shared folder under load",
    properties=("P1", "P4", "P5", "P10"),
    schedule=schedule,
    dags={
        "chaos_work.py": dag_source("chaos_work", tasks=4, seconds=2.0),
        "chaos_tick.py": dag_source("chaos_tick", tasks=1, seconds=0.2),
    },
    masters=2,
    workers=1,
)
