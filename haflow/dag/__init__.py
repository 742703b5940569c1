"""DAG definitions: DAGs, tasks, cron schedules and loading them from a DAGs folder."""

from __future__ import annotations

import sys
import types
from typing import Any

from haflow.core.states import TriggerRule
from haflow.dag.dag import DAG, dag
from haflow.dag.loader import DagBag, DagCache, ImportErrorRecord, load_dag_file, load_dag_folder
from haflow.dag.notifiers import Email, Webhook
from haflow.dag.params import Param
from haflow.dag.schedule import AnySchedule, CronSchedule, parse_schedule
from haflow.dag.secrets import Connection, Variable
from haflow.dag.sensors import (
    BaseSensor,
    ExternalRunSensor,
    FileSensor,
    HttpSensor,
    PythonSensor,
    SqlSensor,
)
from haflow.dag.tasks import BaseTask, BashTask, PythonTask, task

__all__ = [
    "DAG",
    "AnySchedule",
    "BaseSensor",
    "BaseTask",
    "BashTask",
    "Connection",
    "CronSchedule",
    "DagBag",
    "DagCache",
    "Email",
    "ExternalRunSensor",
    "FileSensor",
    "HttpSensor",
    "ImportErrorRecord",
    "Param",
    "PythonSensor",
    "PythonTask",
    "SqlSensor",
    "TriggerRule",
    "Variable",
    "Webhook",
    "dag",
    "load_dag_file",
    "load_dag_folder",
    "parse_schedule",
    "task",
]


class _DagPackage(types.ModuleType):
    """This package, callable as TaskFlow's `@dag`: `from haflow import dag` finds the
    package (a submodule is an attribute of its parent), and Airflow users write `@dag(...)`
    with it, so calling the package is calling `haflow.dag.dag.dag`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return dag(*args, **kwargs)


sys.modules[__name__].__class__ = _DagPackage
