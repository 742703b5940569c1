"""`haflow dags trigger --run-id` is checked where it enters: a reserved or malformed id is a
usage error (exit 2) before any metastore is asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from haflow.cli.main import cli


@pytest.mark.parametrize(
    ("run_id", "said"),
    [
        ("scheduled__2026-12-07T15:00:00+00:00", "must not start with 'scheduled__'"),
        ("backfill__x", "must not start with 'backfill__'"),
        ("r1\n", "must be 1 to 250 characters"),
    ],
)
def test_a_bad_manual_run_id_is_a_usage_error(run_id: str, said: str) -> None:
    out = CliRunner().invoke(
        cli, ["dags", "trigger", "d", "--run-id", run_id], env={"HAFLOW_HOME": "/nonexistent"}
    )
    assert out.exit_code == 2, out.output
    assert said in out.output
