"""A parsed DAG checked against the metastore's limits (haflow.dag.fits): each value too long
or out of range is a DagDefinitionError naming the DAG, the task and the field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from haflow.core import limits
from haflow.dag.fits import check_fits
from haflow.errors import DagDefinitionError
from haflow.metastore.records import DagRecord, TaskDef

RECORD = DagRecord("d", "/dags/d.py", None, None, False, 16, ["etl"], "", "fp")
TASK = TaskDef("t", 0, 300.0, None, "default")


def test_values_within_the_limits_fit() -> None:
    check_fits(RECORD, [TASK, replace(TASK, queue="q" * limits.QUEUE_CHARS)])
    big = {"tasks": {f"t{i}": {"upstream": [f"t{i - 1}"]} for i in range(5000)}}  # > 64 KiB
    check_fits(replace(RECORD, structure=big), [TASK])


@pytest.mark.parametrize(
    ("record", "task", "message"),
    [
        (RECORD, replace(TASK, queue="q" * 101), "task 't': queue must be at most 100"),
        (RECORD, replace(TASK, retries=2**31), "task 't': retries must be at most"),
        (RECORD, replace(TASK, pool_slots=2**40), "task 't': pool_slots must be at most"),
        (RECORD, replace(TASK, retry_delay_s=1e12), "task 't': retry_delay must be at most"),
        (RECORD, replace(TASK, timeout_s=float("inf")), "execution_timeout must be at most"),
        (replace(RECORD, tags=["x" * 101]), TASK, "each tag must be 1 to 100"),
        (replace(RECORD, tags=[3]), TASK, "tags must be a list of strings"),  # type: ignore[list-item]
        (replace(RECORD, tags=["t" * 90] * 11), TASK, "tags (as the JSON list stored)"),
        (replace(RECORD, description="é" * 40000), TASK, "description must be at most 65535 bytes"),
        (replace(RECORD, description="a\x00"), TASK, "description must not contain NUL"),
        (
            replace(RECORD, structure={"tasks": {"t": "x" * limits.LONG_TEXT_BYTES}}),
            TASK,
            "its tasks (as stored) must be at most 16777215 bytes",
        ),
        (replace(RECORD, max_active_runs=2**31), TASK, "max_active_runs must be at most"),
        (replace(RECORD, fileloc="/" * 1001), TASK, "its file's path must be at most 1000"),
        (replace(RECORD, start_date=datetime(1, 1, 1, tzinfo=UTC)), TASK, "start_date must lie"),
        (replace(RECORD, end_date=datetime(9999, 1, 1, tzinfo=UTC)), TASK, "end_date must lie"),
    ],
)
def test_each_value_past_its_column_names_the_dag_and_field(
    record: DagRecord, task: TaskDef, message: str
) -> None:
    with pytest.raises(DagDefinitionError, match=r"^DAG 'd'") as err:
        check_fits(record, [task])
    assert message in str(err.value)
