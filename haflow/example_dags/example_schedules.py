"""Schedules besides cron: `@once` (one run, at the start date) and a `timedelta` (every
interval counted from the start date, in elapsed time whatever the time zone)."""

from datetime import datetime, timedelta

from haflow import DAG, BashTask

with DAG("example_once", schedule="@once", start_date=datetime(2026, 1, 1), tags=["example"]):
    BashTask("setup", bash_command="echo set up once")

with DAG(
    "example_every_6h",
    schedule=timedelta(hours=6),
    start_date=datetime(2026, 1, 1),
    catchup=False,  # only the latest interval, not every one since the start date
    tags=["example"],
):
    BashTask("sync", bash_command='echo "$HAFLOW_DATA_INTERVAL_START .. $HAFLOW_DATA_INTERVAL_END"')
