"""DAG definitions: DAGs, tasks, cron schedules and loading them from a DAGs folder."""

from __future__ import annotations

from haflow.core.states import TriggerRule
from haflow.dag.dag import DAG
from haflow.dag.loader import DagBag, DagCache, ImportErrorRecord, load_dag_file, load_dag_folder
from haflow.dag.notifiers import Email, Webhook
from haflow.dag.schedule import Schedule, parse_schedule
from haflow.dag.tasks import BaseTask, BashTask, PythonTask, task

__all__ = [
    "DAG",
    "BaseTask",
    "BashTask",
    "DagBag",
    "DagCache",
    "Email",
    "ImportErrorRecord",
    "PythonTask",
    "Schedule",
    "TriggerRule",
    "Webhook",
    "load_dag_file",
    "load_dag_folder",
    "parse_schedule",
    "task",
]
