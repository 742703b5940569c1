"""Sensors: wait for a file without holding a worker slot. `mode="reschedule"` ends each poke
that finds nothing; the task is up for reschedule, and pokes again after `poke_interval`."""

import tempfile
from datetime import datetime
from pathlib import Path

from haflow import DAG, BashTask, FileSensor

DROP = Path(tempfile.gettempdir(), "haflow-example-sensors", "ready.flag")

with DAG(
    "example_sensors",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    max_active_runs=1,  # one drop at a time
    tags=["example"],
):
    # the file arrives a few seconds after the run starts
    deliver = BashTask("deliver", bash_command=f"sleep 3; mkdir -p {DROP.parent}; touch {DROP}")
    arrived = FileSensor(
        "arrived", filepath=str(DROP), mode="reschedule", poke_interval=1, timeout=300
    )
    # the drop is consumed: the next run waits for a new one
    arrived >> BashTask("process", bash_command=f"echo processing {DROP}; rm {DROP}")
