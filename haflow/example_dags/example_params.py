"""Params: typed run parameters with defaults, shown in the trigger form, checked when a run
is triggered, and seen by the tasks."""

from datetime import datetime

from haflow import DAG, BashTask, Param, task

with DAG(
    "example_params",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["example"],
    params={
        "rows": Param(10, type="integer", minimum=1, maximum=1000, description="rows to load"),
        "mode": Param("delta", enum=["full", "delta"], description="what to reload"),
    },
):

    @task
    def load(context=None):
        params = context["params"]
        print(f"loading {params['rows']} rows ({params['mode']})")

    load() >> BashTask("report", bash_command='echo "params were $HAFLOW_PARAMS"')
