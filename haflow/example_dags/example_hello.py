"""A first DAG: a bash task, a Python task and a decorated one, run by `haflow dags trigger`."""

from datetime import datetime

from haflow.dag import DAG, BashTask, PythonTask, task


def greet(name: str) -> str:
    print(f"hello, {name}")
    return name


with DAG("example_hello", schedule=None, start_date=datetime(2026, 1, 1), tags=["example"]):
    start = BashTask("start", bash_command='echo "run $HAFLOW_RUN_ID, conf $HAFLOW_CONF"')
    hello = PythonTask("hello", python_callable=greet, op_kwargs={"name": "haflow"})

    @task
    def done(context=None):
        print("finished attempt", context["attempt"] if context else "?")

    start >> hello >> done()
