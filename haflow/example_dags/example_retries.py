"""Retries and trigger rules: a flaky task retried, an alert that runs only on failure."""

import random
from datetime import datetime, timedelta

from haflow.dag import DAG, BashTask, PythonTask, TriggerRule


def flaky() -> None:
    if random.random() < 0.5:
        raise RuntimeError("transient failure, will be retried")
    print("worked this time")


with DAG(
    "example_retries",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=2),
        "execution_timeout": timedelta(minutes=5),
    },
    tags=["example"],
):
    work = PythonTask("flaky", python_callable=flaky)
    report = BashTask("report", bash_command="echo all good")
    alert = BashTask(
        "alert", bash_command="echo something failed", trigger_rule=TriggerRule.ONE_FAILED
    )
    work >> [report, alert]
