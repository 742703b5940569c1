"""A cron DAG that runs every minute: each run covers the minute that just ended."""

from datetime import datetime

from haflow.dag import DAG, BashTask

with DAG(
    "example_every_minute",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "cron"],
):
    extract = BashTask("extract", bash_command="echo interval $HAFLOW_DATA_INTERVAL_START")
    load = BashTask("load", bash_command="echo loaded $HAFLOW_DATA_INTERVAL_END")
    extract >> load
