"""TaskFlow, as in Airflow: `@dag` makes the DAG from a function, `@task` the tasks; a task
given another task's call (`count(extract())`) runs after it and receives its result; the
trigger rules decide what runs after a branch was skipped or failed."""

from datetime import datetime

from haflow import BashTask, TriggerRule, dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1), tags=["example"])
def example_taskflow():
    """Extract, a check that fails on purpose, and what runs after it."""

    @task
    def extract():
        print("extracted 3 rows")
        return {"rows": [3, 5, 8]}  # the task's result: any JSON value

    @task
    def count(data):
        print("counted", len(data["rows"]), "rows")
        return len(data["rows"])

    check = BashTask("check", bash_command="echo 'a check that fails'; exit 1")
    # runs once every upstream ended, whatever they ended as
    cleanup = BashTask("cleanup", bash_command="echo cleanup", trigger_rule=TriggerRule.ALL_DONE)
    # runs as soon as one upstream succeeded or failed
    notify = BashTask("notify", bash_command="echo first result in", trigger_rule="one_done")
    # runs whatever happens upstream, even before it ends
    audit = BashTask("audit", bash_command="echo audited", trigger_rule="always")
    first = extract()
    count(first)  # count runs after extract, with extract's result as `data`
    [first, check] >> cleanup
    [first, check] >> notify
    check >> audit


example_taskflow()
