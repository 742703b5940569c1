"""Retries with exponential backoff: a task that fails twice, retried after 1 s then 2 s
(doubling up to `max_retry_delay`), succeeds on its third try; an alert runs only on failure."""

from datetime import datetime, timedelta

from haflow import DAG, BashTask, TriggerRule, task

with DAG(
    "example_retries",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(minutes=5),
    },
    tags=["example"],
):

    @task
    def flaky(context=None):
        if context["attempt"] < 3:
            raise RuntimeError(f"transient failure on try {context['attempt']}, will be retried")
        print("worked on try", context["attempt"])

    alert = BashTask(
        "alert", bash_command="echo something failed", trigger_rule=TriggerRule.ONE_FAILED
    )
    flaky() >> [BashTask("report", bash_command="echo all good"), alert]
