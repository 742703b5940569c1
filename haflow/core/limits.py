"""The metastore's limits on the values users give, in one table: the models size their columns
from it and every entry point (DAG parsing, the REST API, the CLI, the web pages) checks a value
against it, so a value that passes its entry always fits its row, on every backend.

A limit is the strictest backend's: a DAG that loads on PostgreSQL loads on MariaDB too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ID_CHARS = 250
"""A DAG's, task's or run's id; a pool's, variable's or connection's name (String(250))."""
QUEUE_CHARS = 100
"""A task's queue (String(100)): Celery's queue names go on the broker as they are."""
FILELOC_CHARS = 1000
SCHEDULE_CHARS = 100
TIMEZONE_CHARS = 64
TAG_CHARS = 100
"""One tag of a DAG (Airflow's own limit)."""
TAGS_CHARS = 1000
"""A DAG's tags as the JSON list stored (String(1000))."""
TEXT_BYTES = 65535
"""A TEXT column on MySQL/MariaDB (a DAG's description, a run's conf as its JSON), in UTF-8
bytes."""
LONG_TEXT_BYTES = 2**24 - 1
"""A MEDIUMTEXT column on MySQL/MariaDB (a DAG's structure and notification rules as their
JSON, a variable's value), in UTF-8 bytes."""
INT_MAX = 2**31 - 1
"""An Integer column on every backend (retries, pool slots, max_active_runs)."""
MAX_DURATION = timedelta(days=3650)
"""A retry delay, its backoff cap or a timeout: far beyond any real one, and far from the
arithmetic overflow of a datetime."""
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""A DAG's start_date and end_date lie in [EARLIEST, LATEST): every backend stores them, and
the schedule's next fire times never overflow."""

RESERVED_RUN_ID_PREFIXES = ("scheduled__", "backfill__", "asset_triggered__", "dataset_triggered__")
"""Run ids the scheduler gives its own runs (Airflow's DagRunType prefixes): a manual run may
not take one, or the scheduled run of that interval would find its id taken."""
