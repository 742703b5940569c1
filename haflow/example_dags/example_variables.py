"""Variables and Connections, read by tasks through their worker (docs/design.md 14). Set them
first, or see the fallbacks:

    haflow variables set greeting "good morning"
    haflow connections add example_api --conn-uri 'https://bot:s3cret-token@api.example.com'

`greet` reads the variable (a default when it is not set). `call` reads the connection and
prints its password, which its log shows as ***. (A bash task names what it reads:
`BashTask(..., connections=["example_api"])` gets $HAFLOW_CONN_EXAMPLE_API, the URI; one that
names a missing connection fails, naming it.)"""

from datetime import datetime

from haflow import DAG, Connection, Variable, task
from haflow.errors import NotFound

with DAG("example_variables", schedule=None, start_date=datetime(2026, 1, 1), tags=["example"]):

    @task
    def greet() -> str:
        greeting = Variable.get("greeting", default_var="hello")
        print(f"{greeting}, haflow")
        return greeting

    @task
    def call() -> bool:
        try:
            api = Connection.get("example_api")
        except NotFound:
            print("no connection example_api: add it with `haflow connections add`")
            return False
        print(f"calling {api.host} as {api.login} with password {api.password}")
        return True

    greet() >> call()
