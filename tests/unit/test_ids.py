"""The one run-id check every entry point shares (CLI, API and pages, through the repository)."""

from __future__ import annotations

import pytest

from haflow.core.ids import check_manual_run_id, check_run_id
from haflow.errors import InvalidRequest


@pytest.mark.parametrize(
    "good", ["r1", "manual__2026-11-26T01:18:12.123456+00:00", "a" * 250, "x.y:z+w-v_u"]
)
def test_valid_run_ids_pass(good: str) -> None:
    assert check_run_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "../../x", "a/b", "x\ny", "a" * 251, "a b", "<script>", "é", 5, None]
)
def test_invalid_run_ids_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^run_id must be 1 to 250 characters"):
        check_run_id(bad)


def test_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_run_id("r1\n")


@pytest.mark.parametrize(
    "reserved",
    [
        "scheduled__2026-12-07T15:00:00+00:00",
        "backfill__x",
        "asset_triggered__1",
        "dataset_triggered__1",
    ],
)
def test_a_manual_run_may_not_take_an_id_the_scheduler_gives(reserved: str) -> None:
    assert check_run_id(reserved) == reserved  # a valid id: the scheduler's own runs have them
    with pytest.raises(InvalidRequest, match=r"^dag_run_id must not start with '"):
        check_manual_run_id(reserved, "dag_run_id")


def test_a_manual_run_may_take_a_manual_looking_id() -> None:
    assert check_manual_run_id("manual__2026-12-07") == "manual__2026-12-07"
