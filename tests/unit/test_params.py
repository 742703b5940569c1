"""Run parameters: their schemas checked at parse time, a trigger's conf checked against them,
the values a run's tasks see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from haflow import DAG, Param
from haflow.core.params import InvalidParam, resolve
from haflow.errors import DagDefinitionError

PARAMS: dict[str, dict[str, Any]] = {
    "n": {"type": "integer", "minimum": 1, "default": 3},
    "mode": {"type": "string", "enum": ["full", "delta"], "default": "delta"},
    "table": {"type": "string", "pattern": "^[a-z_]+$"},
}


def test_a_conf_gets_the_defaults_and_keeps_its_own_values() -> None:
    assert resolve(PARAMS, {"table": "sales", "other": 1}) == {
        "n": 3,
        "mode": "delta",
        "table": "sales",
    }
    assert resolve(PARAMS, {"table": "t", "n": 9, "mode": "full"})["n"] == 9


@pytest.mark.parametrize(
    ("conf", "field", "why"),
    [
        ({}, "table", "is required"),
        ({"table": "Sales!"}, "table", "must match"),
        ({"table": "t", "n": 0}, "n", "must be >= 1"),
        ({"table": "t", "n": "3"}, "n", "must be of type integer"),
        ({"table": "t", "n": True}, "n", "must be of type integer"),  # JSON's true is no number
        ({"table": "t", "mode": "all"}, "mode", "must be one of"),
    ],
)
def test_a_bad_value_is_refused_naming_its_param(
    conf: dict[str, Any], field: str, why: str
) -> None:
    with pytest.raises(InvalidParam, match=why) as info:
        resolve(PARAMS, conf)
    assert info.value.field == field and repr(field) in str(info.value)


def test_dag_params_are_checked_when_the_file_is_parsed() -> None:
    d = DAG("p", params={"n": Param(3, type="integer", minimum=1), "plain": "x"})
    assert d.params == {
        "n": {"type": "integer", "minimum": 1, "default": 3},
        "plain": {"default": "x"},
    }
    assert d.structure()["params"] == d.params
    with pytest.raises(DagDefinitionError, match=r"param 'n'.*the default must be >= 1"):
        DAG("q", params={"n": Param(0, type="integer", minimum=1)})
    with pytest.raises(DagDefinitionError, match="unknown type"):
        DAG("q", params={"n": Param(1, type="int")})
    with pytest.raises(DagDefinitionError, match="unknown schema keywords"):
        DAG("q", params={"n": Param(1, min=0)})
    with pytest.raises(DagDefinitionError, match="scheduled DAG's params need defaults"):
        DAG(
            "q",
            schedule="@daily",
            start_date=datetime(2026, 1, 1, tzinfo=UTC),
            params={"n": Param(type="integer")},
        )
