"""A DAG on Berlin's wall clock: daily at 02:30 local time, across the spring change of 2026.
02:30 does not exist on 29 March (clocks jump from 02:00 to 03:00): that run fires at 03:00,
once. Naive dates are read in the DAG's zone; intervals are stored in UTC."""

from datetime import datetime

from haflow import DAG, BashTask

with DAG(
    "example_timezone",
    schedule="30 2 * * *",
    timezone="Europe/Berlin",
    start_date=datetime(2026, 3, 27),
    end_date=datetime(2026, 3, 31, 5),  # four runs: 28, 29 (at 03:00), 30 and 31 March
    catchup=True,
    tags=["example"],
):
    BashTask("show", bash_command='echo "$HAFLOW_DATA_INTERVAL_START .. $HAFLOW_DATA_INTERVAL_END"')
