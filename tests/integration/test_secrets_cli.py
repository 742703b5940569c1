"""`haflow variables`, `haflow connections`, `haflow rotate-fernet-key` and the doctor's
fernet_key check, run as the real `haflow` command: the commands on SQLite, the rotation (and
what the columns hold) on the metastore of each backend.

The metastore's columns never hold a secret in plaintext; a rotation moves every secret to the
new key while both keys are configured, after which the new key alone reads them all and the
old key alone reads none (an error naming `[core] fernet_key`, never plaintext).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from haflow.doctor.probe import Problem
from haflow.metastore import models as m
from haflow.metastore.engine import create_engine
from tests.daemons import HAFLOW

TOKEN = "tok-3e8d1f7a5c"
PASSWORD = "S3cr@t:pw-9b2c"
API_KEY = "key-6a4e0d1f"


def new_key() -> str:
    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class Haflow:
    """The `haflow` command of one home and metastore, with `[core] fernet_key` = `key`."""

    home: Path
    db_url: str
    key: str

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        (self.home / "dags").mkdir(exist_ok=True)
        env = {
            **os.environ,
            "HAFLOW_HOME": str(self.home),
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": self.db_url,
            "HAFLOW__CORE__FERNET_KEY": self.key,
        }
        return subprocess.run(
            [*HAFLOW, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        out = self.run(*args, stdin=stdin)
        assert out.returncode == 0, f"haflow {' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout

    def fails(self, *args: str, code: int = 1) -> str:
        """The error `haflow ARGS` exits `code` with (nothing on stdout)."""
        out = self.run(*args)
        assert out.returncode == code, f"haflow {' '.join(args)}: {out.stdout}{out.stderr}"
        assert out.stdout == ""
        return out.stderr


@pytest.fixture
def haflow(tmp_path: Path, db_url: str) -> Haflow:
    return Haflow(tmp_path, db_url, new_key())


def raw(db_url: str, table: type[m.Base]) -> str:
    """Every cell of `table` as the metastore keeps it, as one text."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(table.__table__)).all()
    finally:
        engine.dispose()
    return repr([tuple(r) for r in rows])


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI; storage: rotation
def test_variables_set_get_list_delete(haflow: Haflow) -> None:
    haflow.ok("variables", "set", "warehouse_token", TOKEN, "-d", "the warehouse's")
    haflow.ok("variables", "set", "greeting", "hello")
    haflow.ok("variables", "set", "limits", '{"a": [1, 2]}', "--json")
    assert "not JSON" in haflow.fails("variables", "set", "bad", "{nope", "--json", code=2)
    assert haflow.ok("variables", "get", "greeting") == "hello\n"
    assert haflow.ok("variables", "get", "warehouse_token") == f"{TOKEN}\n"
    assert json.loads(haflow.ok("variables", "get", "limits", "--json")) == {"a": [1, 2]}
    assert "'greeting' is not JSON" in haflow.fails("variables", "get", "greeting", "--json")
    assert "no variable 'missing'" in haflow.fails("variables", "get", "missing")
    listed = json.loads(haflow.ok("variables", "list", "-o", "json"))
    assert listed == [
        {"key": "greeting", "description": "", "value": "hello"},
        {"key": "limits", "description": "", "value": '{"a": [1, 2]}'},
        {"key": "warehouse_token", "description": "the warehouse's", "value": "***"},
    ]
    table = haflow.ok("variables", "list")
    assert "***" in table and TOKEN not in table and "hello" in table
    stored = raw(haflow.db_url, m.Variable)
    assert TOKEN not in stored and "hello" not in stored and "gAAAAA" in stored
    assert haflow.ok("variables", "delete", "greeting") == "deleted variable greeting\n"
    assert "no variable 'greeting'" in haflow.fails("variables", "get", "greeting")
    assert "no variable 'greeting'" in haflow.fails("variables", "delete", "greeting")


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI; storage: rotation
def test_variables_import_and_export(haflow: Haflow, tmp_path: Path) -> None:
    source = tmp_path / "vars.json"
    source.write_text(json.dumps({"n": 5, "o": {"k": [1]}, "s": "text", "api_token": TOKEN}))
    assert haflow.ok("variables", "import", str(source)) == "imported 4 variable(s)\n"
    assert haflow.ok("variables", "get", "n") == "5\n"  # kept as its JSON text, like Airflow
    assert haflow.ok("variables", "get", "o") == '{"k": [1]}\n'
    piped = haflow.ok("variables", "import", "-", stdin='{"t": null, "s": "again"}')
    assert piped == "imported 2 variable(s)\n"
    assert haflow.ok("variables", "get", "t") == "null\n"
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "bad_key.json").write_text('{"fine": "1", "not a key!": "2"}')
    for name, error in (
        ("list.json", "holds a JSON array"),
        ("broken.json", "is not JSON"),
        ("missing.json", "No such file"),
        ("bad_key.json", "'not a key!'"),
    ):
        message = haflow.fails("variables", "import", str(tmp_path / name))
        assert error in message and name in message, message
    assert "no variable 'fine'" in haflow.fails("variables", "get", "fine")  # all or none
    target = tmp_path / "out.json"
    target.write_text("old")
    target.chmod(0o644)
    assert haflow.ok("variables", "export", str(target)).startswith("exported 5 variable(s)")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    expected = {"api_token": TOKEN, "n": "5", "o": {"k": [1]}, "s": "again", "t": "null"}
    assert json.loads(target.read_text()) == expected
    assert json.loads(haflow.ok("variables", "export", "-")) == expected


@pytest.mark.parametrize("backend", ["sqlite"])  # the CLI; storage: rotation
def test_connections_add_get_list_delete(haflow: Haflow) -> None:
    uri = f"postgresql://etl:{quote(PASSWORD, safe='')}@db.example:5432/dwh?sslmode=require"
    added = haflow.ok("connections", "add", "dwh", "--conn-uri", uri, "--conn-description", "D")
    assert added == "added connection dwh: " + uri.replace(quote(PASSWORD, safe=""), "***") + "\n"
    haflow.ok(
        "connections", "add", "api", "--conn-type", "http", "--conn-host", "api.example",
        "--conn-login", "bot", "--conn-password", PASSWORD, "--conn-port", "443",
        "--conn-extra", json.dumps({"api_key": API_KEY, "timeout": 5}),
    )  # fmt: skip
    assert "'dwh' exists" in haflow.fails("connections", "add", "dwh", "--conn-type", "http")
    both = haflow.fails("connections", "add", "x", "--conn-uri", uri, "--conn-host", "h", code=2)
    assert "give --conn-uri or --conn-host, not both" in both
    shown = haflow.ok("connections", "get", "dwh")
    assert PASSWORD not in shown and quote(PASSWORD, safe="") not in shown
    assert "password     ***" in shown and "etl:***@db.example" in shown
    revealed = json.loads(haflow.ok("connections", "get", "dwh", "--reveal", "-o", "json"))
    assert revealed["password"] == PASSWORD and revealed["uri"] == uri
    assert (revealed["schema"], revealed["port"], revealed["description"]) == ("dwh", 5432, "D")
    api = json.loads(haflow.ok("connections", "get", "api", "-o", "json"))
    assert api["password"] == "***" and api["extra"] == {"api_key": "***", "timeout": 5}
    listing = haflow.ok("connections", "list", "-o", "json")
    assert PASSWORD not in listing and API_KEY not in listing
    assert [(c["conn_id"], c["host"], c["port"]) for c in json.loads(listing)] == [
        ("api", "api.example", 443),
        ("dwh", "db.example", 5432),
    ]
    stored = raw(haflow.db_url, m.Conn)
    assert PASSWORD not in stored and API_KEY not in stored and "sslmode" not in stored
    assert "db.example" in stored  # only the password and the extra are encrypted
    assert haflow.ok("connections", "delete", "api") == "deleted connection api\n"
    assert "no connection 'api'" in haflow.fails("connections", "get", "api")


def _write_secrets(haflow: Haflow) -> None:
    haflow.ok("variables", "set", "db_token", TOKEN)
    haflow.ok("connections", "add", "wh", "--conn-uri", f"postgresql://etl:{TOKEN}x@db/dwh")


def _reads_all(haflow: Haflow) -> None:
    assert haflow.ok("variables", "get", "db_token") == f"{TOKEN}\n"
    assert f"password     {TOKEN}x" in haflow.ok("connections", "get", "wh", "--reveal")


def _reads_none(haflow: Haflow) -> None:
    for args in (("variables", "get", "db_token"), ("connections", "get", "wh", "--reveal")):
        out = haflow.run(*args)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "cannot be decrypted with [core] fernet_key" in out.stderr
        assert TOKEN not in out.stdout + out.stderr


def _doctor(haflow: Haflow) -> tuple[int, str]:
    out = haflow.run("doctor", "--allow-root")
    line = next(s for s in out.stdout.splitlines() if "fernet_key" in s)
    return out.returncode, line


def test_rotating_the_fernet_key(haflow: Haflow) -> None:
    key_a, key_b = haflow.key, new_key()
    _write_secrets(haflow)
    before = raw(haflow.db_url, m.Variable) + raw(haflow.db_url, m.Conn)
    only_b = replace(haflow, key=key_b)
    code, line = _doctor(only_b)
    assert code == Problem.CONFIG.value and line.startswith("FAIL fernet_key"), line
    assert "variable 'db_token', connection 'wh' cannot be decrypted" in line
    refused = only_b.fails("rotate-fernet-key")  # nothing is rewritten under a key that lacks A
    assert "variable 'db_token', connection 'wh' cannot be decrypted" in refused
    rotated = replace(haflow, key=f"{key_b},{key_a}").ok("rotate-fernet-key")
    assert rotated.startswith("re-encrypted 1 variable(s) and 1 connection(s)")
    assert "now remove the old key(s) from [core] fernet_key on every node" in rotated
    after = raw(haflow.db_url, m.Variable) + raw(haflow.db_url, m.Conn)
    assert after != before and TOKEN not in after
    _reads_all(only_b)
    code, line = _doctor(only_b)
    assert code == 0 and "decrypts all 2 stored secrets" in line, line
    _reads_none(haflow)  # key A alone
    code, line = _doctor(haflow)
    assert code == Problem.CONFIG.value and "cannot be decrypted" in line, line


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_malformed_or_missing_key(haflow: Haflow) -> None:
    malformed = replace(haflow, key="k3y")
    assert "not a Fernet key" in malformed.fails("variables", "list")
    code, line = _doctor(malformed)
    assert code == Problem.CONFIG.value and "not a Fernet key" in line, line
    missing = replace(haflow, key="")
    code, line = _doctor(missing)  # nothing stored: an empty key is a warning as before
    assert code == Problem.SECURITY.value and "fernet_key is empty" in line, line
    haflow.ok("variables", "set", "x", "1")
    code, line = _doctor(missing)
    assert code == Problem.CONFIG.value and "the metastore holds variable 'x'" in line, line
    assert "fernet_key is empty" in missing.fails("variables", "get", "x")
