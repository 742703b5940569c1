"""A parsed DAG checked against the metastore's limits (haflow.core.limits) before it is
written: a value too long, too large or out of range is an import error of its file, naming
the DAG, the task and the field, never a refused write that fails the scheduler's sync."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from haflow.core import limits as lim
from haflow.errors import DagDefinitionError
from haflow.metastore.records import DagRecord, TaskDef


def check_fits(record: DagRecord, defs: Sequence[TaskDef]) -> None:
    """Raise DagDefinitionError on the first value of `record` or `defs` that its column
    cannot hold."""
    where = f"DAG {record.dag_id!r}"
    _chars(record.fileloc, lim.FILELOC_CHARS, where, "its file's path")
    _chars(record.schedule or "", lim.SCHEDULE_CHARS, where, "schedule")
    _chars(record.timezone, lim.TIMEZONE_CHARS, where, "timezone")
    _int(record.max_active_runs, where, "max_active_runs")
    _tags(record.tags, where)
    if not isinstance(record.description, str):
        raise DagDefinitionError(f"{where}: description must be a string")
    _bytes(record.description, lim.TEXT_BYTES, where, "description")
    _bytes(json.dumps(record.structure), lim.LONG_TEXT_BYTES, where, "its tasks (as stored)")
    _bytes(json.dumps(record.notify), lim.LONG_TEXT_BYTES, where, "notify")
    for name, value in (("start_date", record.start_date), ("end_date", record.end_date)):
        _date(value, where, name)
    for d in defs:
        _task(d, f"{where}, task {d.task_id!r}")


def _task(d: TaskDef, where: str) -> None:
    _chars(d.queue, lim.QUEUE_CHARS, where, "queue")
    _int(d.retries, where, "retries")
    _int(d.pool_slots, where, "pool_slots")
    limit_s = lim.MAX_DURATION.total_seconds()
    for name, seconds in (
        ("retry_delay", d.retry_delay_s),
        ("max_retry_delay", d.retry_backoff_cap_s),
        ("execution_timeout", d.timeout_s),
    ):
        if seconds is not None and not seconds <= limit_s:
            raise DagDefinitionError(
                f"{where}: {name} must be at most {lim.MAX_DURATION.days} days, got {seconds:g} s"
            )


def _tags(tags: object, where: str) -> None:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DagDefinitionError(f"{where}: tags must be a list of strings, got {tags!r}"[:300])
    for t in tags:
        if not t or len(t) > lim.TAG_CHARS or "\x00" in t:
            raise DagDefinitionError(
                f"{where}: each tag must be 1 to {lim.TAG_CHARS} characters without NUL, "
                f"got {t[:60]!r}"
            )
    _chars(json.dumps(tags), lim.TAGS_CHARS, where, "tags (as the JSON list stored)")


def _chars(text: str, limit: int, where: str, field: str) -> None:
    if len(text) > limit:
        raise DagDefinitionError(
            f"{where}: {field} must be at most {limit} characters, got {len(text)}"
        )
    _bytes(text, limit * 4, where, field)  # UTF-8's 4 bytes a character: the NUL checks alone


def _bytes(text: str, limit: int, where: str, field: str) -> None:
    """`text` in at most `limit` UTF-8 bytes, without NUL or a lone surrogate (which no
    backend stores)."""
    if "\x00" in text:
        raise DagDefinitionError(f"{where}: {field} must not contain NUL")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise DagDefinitionError(f"{where}: {field} is not valid text (a lone surrogate)") from None
    if size > limit:
        raise DagDefinitionError(f"{where}: {field} must be at most {limit} bytes, got {size}")


def _int(value: int, where: str, field: str) -> None:
    if value > lim.INT_MAX:
        raise DagDefinitionError(f"{where}: {field} must be at most {lim.INT_MAX}, got {value}")


def _date(value: datetime | None, where: str, field: str) -> None:
    if value is not None and not lim.EARLIEST <= value < lim.LATEST:
        raise DagDefinitionError(
            f"{where}: {field} must lie from {lim.EARLIEST.year} to before {lim.LATEST.year}, "
            f"got {value.isoformat()}"
        )
