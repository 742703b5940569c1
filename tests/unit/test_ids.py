"""The one run-id check every entry point shares (CLI, API and pages, through the repository)."""

from __future__ import annotations

import pytest

from haflow.core.ids import check_run_id
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
