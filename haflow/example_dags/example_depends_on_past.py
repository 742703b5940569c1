"""depends_on_past, as in Airflow: each day's `load` waits until the previous day's `load`
succeeded, so the days load in order even when their runs overlap."""

from datetime import datetime

from haflow import DAG, BashTask

with DAG(
    "example_depends_on_past",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    end_date=datetime(2026, 1, 4),  # three days, caught up at once
    catchup=True,
    max_active_runs=3,
    tags=["example"],
):
    load = BashTask(
        "load", bash_command="echo loading $HAFLOW_DATA_INTERVAL_START", depends_on_past=True
    )
    BashTask("check", bash_command="echo checked") << load
