"""TaskFlow, as in Airflow: `@dag` makes the DAG from a function, `@task` the tasks, and a task
given another task's call (`total(extract())`) runs after it and receives its result."""

from datetime import datetime

from haflow import BashTask, dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1), tags=["example"])
def example_taskflow():
    """Extract rows, sum them, report; each step hands its result to the next."""

    @task
    def extract():
        print("extracted 3 rows")
        return {"rows": [3, 5, 8]}  # the task's result: any JSON value

    @task
    def total(data):
        return sum(data["rows"])

    @task
    def report(amount, ti):
        rows = ti.pull("extract")["rows"]  # any ancestor's result, read explicitly
        print(f"{len(rows)} rows, total {amount}")

    rows = extract()
    summed = total(rows)  # total runs after extract, with its result as `data`
    report(amount=summed)
    # a bash task writes its result as JSON and reads its ancestors' from a file
    BashTask(
        "archive",
        bash_command='cat "$HAFLOW_UPSTREAM_RESULTS"; echo \'"archived"\' > "$HAFLOW_RESULT_FILE"',
    ).set_upstream(summed)


example_taskflow()
