"""`haflow users ...` and `haflow webserver` on a real metastore; the Cluster view of ZooKeeper."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from haflow.cli.main import cli
from haflow.core.clock import utcnow
from haflow.errors import HaflowError
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.status import zookeeper_members
from haflow.web.credentials import check_password, token_digest
from tests.daemons import HAFLOW
from tests.zkensemble import ZkEnsemble

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@dataclass
class Outcome:
    exit_code: int
    output: str


def _run(home: Path, db_url: str, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    """Run the CLI in-process; a HaflowError (which `main` prints) is appended to the output."""
    env = {"HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
    result = CliRunner().invoke(cli, ["--home", str(home), *args], env=env, input=input)
    if isinstance(result.exception, HaflowError):
        return Outcome(1, result.output + str(result.exception))
    return Outcome(result.exit_code, result.output)


@SQLITE
def test_users_create_list_token_role_password_delete(db_url: str, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-a-file-123\n")
    made = _run(
        tmp_path, db_url, "users", "create", "ann", "--role", "Op", "--password-file", str(pw)
    )
    assert made.exit_code == 0, made.output
    again = _run(tmp_path, db_url, "users", "create", "ann", "--role", "Op", "--password", "x" * 9)
    assert again.exit_code == 1 and "already exists" in again.output
    ok = _run(
        tmp_path,
        db_url,
        "users",
        "create",
        "ann",
        "--role",
        "Op",
        "--password",
        "x" * 9,
        "--exists-ok",
    )
    assert ok.exit_code == 0 and "left as it is" in ok.output
    short = _run(
        tmp_path, db_url, "users", "create", "bob", "--role", "Viewer", "--password", "short"
    )
    assert short.exit_code == 1 and "at least 8" in short.output
    prompted = _run(
        tmp_path,
        db_url,
        "users",
        "create",
        "cy",
        "--role",
        "Viewer",
        input="typed-pass-1\ntyped-pass-1\n",
    )
    assert prompted.exit_code == 0, prompted.output
    repo = Repository(create_engine(db_url))
    assert check_password(repo.users.get("ann").password_hash, "from-a-file-123")
    assert check_password(repo.users.get("cy").password_hash, "typed-pass-1")
    listed = _run(tmp_path, db_url, "users", "list", "--output", "json")
    assert '"ann"' in listed.output and '"Op"' in listed.output
    token = _run(tmp_path, db_url, "users", "token", "ann").output.strip()
    found = repo.users.by_token(token_digest(token), utcnow())
    assert token.startswith("hft_") and found is not None and found.username == "ann"
    assert _run(tmp_path, db_url, "users", "set-role", "ann", "Admin").exit_code == 0
    assert repo.users.get("ann").role == "Admin"
    assert (
        _run(
            tmp_path, db_url, "users", "set-password", "ann", "--password", "new-pass-12"
        ).exit_code
        == 0
    )
    assert check_password(repo.users.get("ann").password_hash, "new-pass-12")
    assert _run(tmp_path, db_url, "users", "delete", "ann").exit_code == 0
    assert repo.users.by_token(token_digest(token), utcnow()) is None
    bad_role = _run(
        tmp_path, db_url, "users", "create", "dee", "--role", "Root", "--password", "x" * 9
    )
    assert bad_role.exit_code == 2 and "Root" in bad_role.output


@SQLITE
def test_users_tokens_create_list_revoke(db_url: str, tmp_path: Path) -> None:
    import json

    def cli(*args: str) -> Outcome:
        out: Outcome = _run(tmp_path, db_url, "users", *args)
        assert out.exit_code == 0, out.output
        return out

    cli("create", "bo", "--role", "Viewer", "--password", "bo-password-1")
    repo = Repository(create_engine(db_url))
    forever = cli("tokens", "create", "bo", "--name", "ci").output.strip()
    week = cli("tokens", "create", "bo", "--name", "week", "--expires-in-days", "7").output.strip()
    listed = json.loads(cli("tokens", "list", "--output", "json").output)
    assert [(t["name"], t["state"]) for t in listed] == [("ci", "active"), ("week", "active")]
    assert listed[0]["expires_at"] is None and listed[1]["expires_at"]
    assert forever not in json.dumps(listed) and week not in json.dumps(listed)
    cli("tokens", "revoke", str(listed[0]["id"]))
    assert repo.users.by_token(token_digest(forever), utcnow()) is None
    assert repo.users.by_token(token_digest(week), utcnow()) is not None
    active = json.loads(cli("tokens", "list", "--user", "bo", "--output", "json").output)
    assert [t["name"] for t in active] == ["week"]
    every = json.loads(cli("tokens", "list", "--all", "--output", "json").output)
    assert [t["state"] for t in every] == ["revoked", "active"]
    missing = _run(tmp_path, db_url, "users", "tokens", "revoke", "999")
    assert missing.exit_code == 1 and "no API token 999" in missing.output
    too_long = _run(tmp_path, db_url, "users", "tokens", "create", "bo", "--expires-in-days", "0")
    assert too_long.exit_code == 2


@SQLITE
def test_webserver_refuses_an_empty_secret_key(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
    out = subprocess.run(
        [*HAFLOW, "webserver", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "secret_key is empty" in out.stderr


def test_cluster_view_names_each_zookeeper_members_mode(zk_ensemble: ZkEnsemble) -> None:
    members = zookeeper_members(zk_ensemble.hosts + "/haflow")
    modes = sorted(m["mode"] for m in members)
    assert modes == ["follower", "follower", "leader"], members
    down = zookeeper_members("127.0.0.1:1")
    assert down[0]["mode"].startswith("unreachable")
