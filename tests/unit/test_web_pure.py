"""The web's pure parts: graph layout, next-run times, passwords and tokens, the OpenAPI shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from haflow.errors import InvalidRequest
from haflow.metastore.records import DagDetail
from haflow.web.credentials import (
    check_password,
    fingerprint,
    hash_password,
    new_token,
    token_digest,
)
from haflow.web.graph import depths, layout
from haflow.web.openapi import document
from haflow.web.serialize import next_run

DIAMOND: dict[str, dict[str, Any]] = {
    "a": {"upstream": []},
    "b": {"upstream": ["a"]},
    "c": {"upstream": ["a"]},
    "d": {"upstream": ["b", "c"]},
    "lonely": {"upstream": []},
}


CHAIN: dict[str, dict[str, Any]] = {
    "x": {"upstream": []},
    "y": {"upstream": ["x"]},
    "z": {"upstream": ["x", "y"]},
}


def test_depth_is_the_longest_path_from_a_root() -> None:
    assert depths(DIAMOND) == {"a": 0, "b": 1, "c": 1, "d": 2, "lonely": 0}
    assert depths(CHAIN)["z"] == 2


def test_layout_places_columns_by_depth_and_draws_every_edge() -> None:
    shape = layout(DIAMOND, {"a": "success"})
    boxes = {b.task_id: b for b in shape.boxes}
    assert boxes["a"].x == boxes["lonely"].x < boxes["b"].x == boxes["c"].x < boxes["d"].x
    assert boxes["b"].y != boxes["c"].y
    assert boxes["a"].state == "success" and boxes["d"].state == "none"
    assert len(shape.edges) == 4
    for e in shape.edges:
        assert e.x1 < e.x2
    assert all(
        b.x + shape.box_w <= shape.width and b.y + shape.box_h <= shape.height for b in shape.boxes
    )
    assert layout({}, {}).boxes == []


def _dag(schedule: str | None, last: datetime | None, catchup: bool = False) -> DagDetail:
    return DagDetail("d", "/d.py", schedule, False, True, 1, catchup, None, last, None, [], "", {})


def test_next_run_follows_the_schedule() -> None:
    now = datetime(2026, 3, 1, 12, 7, tzinfo=UTC)
    assert next_run(_dag("*/5 * * * *", None), now) == datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
    old = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert next_run(_dag("*/5 * * * *", old), now) == datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
    assert next_run(_dag("*/5 * * * *", old, catchup=True), now) == datetime(
        2026, 3, 1, 9, 5, tzinfo=UTC
    )
    assert next_run(_dag(None, None), now) is None
    assert next_run(_dag("not a cron", None), now) is None


def test_passwords_are_salted_and_checked() -> None:
    one, two = hash_password("s3cret-enough"), hash_password("s3cret-enough")
    assert one != two and "s3cret" not in one
    assert check_password(one, "s3cret-enough") and not check_password(one, "s3cret-enougH")
    with pytest.raises(InvalidRequest, match="at least 8"):
        hash_password("short")


def test_tokens_are_random_and_only_their_digest_is_kept() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("hft_") and len(a) > 40
    assert token_digest(a) == token_digest(a) != token_digest(b)
    assert fingerprint("k1") != fingerprint("k2") and "k1" not in fingerprint("k1")


def test_the_openapi_document_is_valid_and_every_operation_answers_401_and_503() -> None:
    """Every operation that needs a login says it answers 401, and 503 without a metastore."""
    from openapi_spec_validator import validate

    doc = document()
    validate(doc)
    ops = [op for path in doc["paths"].values() for op in path.values()]
    assert len(ops) >= 13
    for op in ops:
        if op.get("security") == []:  # Airflow's /health and /version: no login, always 200
            assert set(op["responses"]) == {"200"}, op["operationId"]
            continue
        assert {"401", "503"} <= set(op["responses"]), op["operationId"]
