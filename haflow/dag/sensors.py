"""Sensors: tasks that wait for something (a file, an SQL condition, an HTTP endpoint, another
DAG's run) by poking it every `poke_interval` until it is there or `timeout` has passed.

`mode="poke"` keeps the attempt (and its worker slot) between pokes; `mode="reschedule"` ends
the attempt after each poke that found nothing: the task instance is up for reschedule, holds
no slot, and is queued again (a new attempt, no retry used) once the next poke is due. Either
way each poke runs like any attempt, so sensors survive a leader failover or a worker's loss as
attempts do (docs/design.md section 11). The timeout counts from the first poke (across
reschedules); past it the attempt fails, and a retry, if any, waits a whole timeout again.

A poke runs in the attempt's own process (`poke` returns whether the condition holds), except
`ExternalRunSensor`'s, which reads the metastore and so is made by the worker itself
(`haflow.worker.sensing`): its `poke` only describes what to look for.
"""

from __future__ import annotations

import glob
import inspect
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from haflow.dag.tasks import BaseTask, as_duration
from haflow.errors import DagDefinitionError

MODES = ("poke", "reschedule")
DEFAULT_POKE_INTERVAL = timedelta(seconds=60)
DEFAULT_TIMEOUT = timedelta(days=7)


class BaseSensor(BaseTask):
    """A task that pokes until its condition holds. Subclasses implement `poke(context)`."""

    kind: ClassVar[str] = "sensor"

    def __init__(
        self,
        task_id: str,
        *,
        poke_interval: timedelta | float = DEFAULT_POKE_INTERVAL,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        mode: str = "poke",
        **base: Any,
    ) -> None:
        self._sensor_args = (poke_interval, timeout, mode)
        super().__init__(task_id, **base)

    def _check_arguments(self, where: str) -> None:
        poke_interval, timeout, mode = self._sensor_args
        self.poke_interval = as_duration(poke_interval, "poke_interval", where)
        self.timeout = as_duration(timeout, "timeout", where)
        if self.poke_interval <= timedelta(0):
            raise DagDefinitionError(
                f"{where}: poke_interval must be above 0, got {poke_interval!r}"
            )
        if mode not in MODES:
            raise DagDefinitionError(f"{where}: mode must be 'poke' or 'reschedule', got {mode!r}")
        self.mode = mode
        self._check_sensor(where)

    def _check_sensor(self, where: str) -> None:
        """Subclasses raise DagDefinitionError on a bad argument of their own."""

    def poke(self, context: Mapping[str, Any]) -> object:
        """Whether the condition holds now (truthy: the sensor succeeds)."""
        raise NotImplementedError

    def sensing(self) -> dict[str, Any]:
        """What the worker needs to know of this sensor beside each poke's answer."""
        return {
            "poke_interval": self.poke_interval.total_seconds(),
            "timeout": self.timeout.total_seconds(),
            "mode": self.mode,
        }


class PythonSensor(BaseSensor):
    """Pokes by calling `python_callable(context)` (or with no argument if it takes none)."""

    def __init__(self, task_id: str, python_callable: Callable[..., object], **kw: Any) -> None:
        self.python_callable = python_callable
        super().__init__(task_id, **kw)

    def _check_sensor(self, where: str) -> None:
        if not callable(self.python_callable):
            raise DagDefinitionError(f"{where}: python_callable must be callable")

    def poke(self, context: Mapping[str, Any]) -> object:
        if inspect.signature(self.python_callable).parameters:
            return self.python_callable(context)
        return self.python_callable()


class FileSensor(BaseSensor):
    """Waits until `filepath` exists on the worker (a glob pattern waits for any match; a
    directory must not be empty). Relative paths are rejected: a worker's working directory
    is not the author's."""

    def __init__(self, task_id: str, filepath: str, **kw: Any) -> None:
        self.filepath = filepath
        super().__init__(task_id, **kw)

    def _check_sensor(self, where: str) -> None:
        if not isinstance(self.filepath, str) or not os.path.isabs(self.filepath):
            raise DagDefinitionError(
                f"{where}: filepath must be an absolute path, got {self.filepath!r}"
            )

    def poke(self, context: Mapping[str, Any]) -> bool:
        pattern = self.filepath
        paths = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
        for path in paths:
            if os.path.isfile(path) or (os.path.isdir(path) and any(os.scandir(path))):
                print(f"found {path}")
                return True
        print(f"no file at {pattern}")
        return False


def _truthy(cell: object) -> bool:
    """Airflow's SqlSensor reading of the first cell: 0, '0', '' and NULL are false."""
    return cell not in (None, 0, "0", "", False)


class SqlSensor(BaseSensor):
    """Waits until `sql`'s first row's first cell is true (not NULL, 0, '0' or ''). `conn` is
    an SQLAlchemy URL, or `conn_id` names the environment variable `HAFLOW_CONN_<CONN_ID>`
    holding one (let it through `[worker] task_env_allowlist`), as Airflow's `AIRFLOW_CONN_*`.
    """

    def __init__(
        self,
        task_id: str,
        sql: str,
        *,
        conn: str | None = None,
        conn_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        self.sql, self.conn, self.conn_id = sql, conn, conn_id
        self.parameters = dict(parameters or {})
        super().__init__(task_id, **kw)

    def _check_sensor(self, where: str) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise DagDefinitionError(f"{where}: sql must be a non-empty string")
        if (self.conn is None) == (self.conn_id is None):
            raise DagDefinitionError(f"{where}: give exactly one of conn (a URL) and conn_id")

    def _url(self) -> str:
        if self.conn is not None:
            return self.conn
        name = f"HAFLOW_CONN_{str(self.conn_id).upper()}"
        url = os.environ.get(name)
        if not url:
            raise RuntimeError(
                f"conn_id {self.conn_id!r}: ${name} is not set in the task's environment "
                "(set it on the workers and add it to [worker] task_env_allowlist)"
            )
        return url

    def poke(self, context: Mapping[str, Any]) -> bool:
        from sqlalchemy import create_engine, text  # only in the attempt's process

        engine = create_engine(self._url(), pool_pre_ping=False)
        try:
            with engine.connect() as conn:
                row = conn.execute(text(self.sql), self.parameters).first()
        finally:
            engine.dispose()
        print(f"first row: {row!r}")
        return row is not None and _truthy(row[0])


class HttpSensor(BaseSensor):
    """Waits until `url` answers 2xx (and `response_check(body_text)` is true, if given);
    any other status or a connection error is a "not yet"."""

    def __init__(
        self,
        task_id: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        response_check: Callable[[str], object] | None = None,
        request_timeout: float = 30.0,
        **kw: Any,
    ) -> None:
        self.url, self.method = url, method
        self.headers = dict(headers or {})
        self.response_check = response_check
        self.request_timeout = request_timeout
        super().__init__(task_id, **kw)

    def _check_sensor(self, where: str) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise DagDefinitionError(f"{where}: url must be an http(s) URL, got {self.url!r}")
        if self.response_check is not None and not callable(self.response_check):
            raise DagDefinitionError(f"{where}: response_check must be callable")

    def poke(self, context: Mapping[str, Any]) -> bool:
        request = urllib.request.Request(self.url, method=self.method, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:
                body = response.read().decode("utf-8", "replace")
                status = response.status
        except urllib.error.HTTPError as exc:
            print(f"{self.url}: HTTP {exc.code}")
            return False
        except OSError as exc:  # refused, unreachable, timed out
            print(f"{self.url}: {exc}")
            return False
        print(f"{self.url}: HTTP {status}")
        return 200 <= status < 300 and (
            self.response_check is None or bool(self.response_check(body))
        )


class ExternalRunSensor(BaseSensor):
    """Waits for another DAG's run for the same data interval (shifted back by
    `execution_delta`, if given) to end in one of `allowed_states`, or, with
    `external_task_id`, that run's task; one of `failed_states` fails the sensor at once."""

    def __init__(
        self,
        task_id: str,
        external_dag_id: str,
        external_task_id: str | None = None,
        *,
        allowed_states: Iterable[str] = ("success",),
        failed_states: Iterable[str] | None = None,
        execution_delta: timedelta | None = None,
        **kw: Any,
    ) -> None:
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.allowed_states = sorted(allowed_states)
        default_failed = ("failed",) if external_task_id is None else ("failed", "upstream_failed")
        self.failed_states = sorted(failed_states if failed_states is not None else default_failed)
        self.execution_delta = execution_delta or timedelta(0)
        super().__init__(task_id, **kw)

    def _check_sensor(self, where: str) -> None:
        if not isinstance(self.external_dag_id, str) or not self.external_dag_id:
            raise DagDefinitionError(f"{where}: external_dag_id must be a DAG id")
        both = set(self.allowed_states) & set(self.failed_states)
        if both:
            raise DagDefinitionError(f"{where}: states both allowed and failed: {sorted(both)}")
        if not isinstance(self.execution_delta, timedelta):
            raise DagDefinitionError(f"{where}: execution_delta must be a timedelta")

    def poke(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """What to look for: the worker makes this poke (it reads the metastore)."""
        return {
            "external_dag_id": self.external_dag_id,
            "external_task_id": self.external_task_id,
            "allowed_states": self.allowed_states,
            "failed_states": self.failed_states,
            "execution_delta_s": self.execution_delta.total_seconds(),
        }
