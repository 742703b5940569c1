"""haflow: a workflow orchestrator built for high availability.

What DAG files use is importable from here, as in Airflow: `from haflow import DAG, dag,
task, BashTask, PythonTask, Variable, Connection` (loaded on first use, so that `import
haflow` stays light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {  # `dag` is the package haflow.dag itself, which is callable as `@dag`
    name: "haflow.dag"
    for name in (
        "DAG",
        "task",
        "BaseTask",
        "BashTask",
        "Connection",
        "Param",
        "PythonTask",
        "TriggerRule",
        "Variable",
        "Webhook",
        "Email",
        "BaseSensor",
        "ExternalRunSensor",
        "FileSensor",
        "HttpSensor",
        "PythonSensor",
        "SqlSensor",
    )
}

if TYPE_CHECKING:
    from haflow.dag import (
        DAG,
        BaseSensor,
        BaseTask,
        BashTask,
        Connection,
        Email,
        ExternalRunSensor,
        FileSensor,
        HttpSensor,
        Param,
        PythonSensor,
        PythonTask,
        SqlSensor,
        TriggerRule,
        Variable,
        Webhook,
        task,
    )

__all__ = [
    "DAG",
    "BaseSensor",
    "BaseTask",
    "BashTask",
    "Connection",
    "Email",
    "ExternalRunSensor",
    "FileSensor",
    "HttpSensor",
    "Param",
    "PythonSensor",
    "PythonTask",
    "SqlSensor",
    "TriggerRule",
    "Variable",
    "Webhook",
    "__version__",
    "task",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'haflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
