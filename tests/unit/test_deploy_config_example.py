"""deploy/haflow.cfg.example documents every setting of the schema and nothing else.

The example is render_default_config()'s text (every key commented out at its default, with
its meaning) plus the uncommented values a cluster node needs and '##' notes. Dropping those
additions must give back exactly what the schema renders today; otherwise the example drifted.
"""

from __future__ import annotations

import configparser
import difflib
import re
from pathlib import Path

import pytest

from haflow.config.loader import load_settings, render_default_config
from haflow.config.schema import SCHEMA, split_key
from haflow.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "haflow.cfg.example"
HOME = Path("/etc/haflow")
ASSIGNMENT = re.compile(r"^(?P<commented># )?(?P<key>[a-z_]+) =(?: (?P<value>.*))?$")


def rendered_part(text: str) -> str:
    """The example without its cluster values and notes: what render_default_config made."""
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith("##") and not (ASSIGNMENT.match(line) and line[0] != "#")
    ]
    return "\n".join(kept) + "\n"


def drift(text: str) -> str:
    expected = render_default_config(HOME)
    return "".join(
        difflib.unified_diff(
            expected.splitlines(True), rendered_part(text).splitlines(True), "schema", "example"
        )
    )


def test_example_documents_exactly_the_schema() -> None:
    diff = drift(EXAMPLE.read_text())
    assert diff == "", (
        "deploy/haflow.cfg.example drifted from haflow/config/schema.py; regenerate it with "
        f"`.venv/bin/python deploy/render-cfg-example.py`:\n{diff}"
    )


def test_every_key_of_the_schema_is_in_the_example() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    text = re.sub(r"(?m)^# ([a-z_]+ =)", r"\1", EXAMPLE.read_text())  # the defaults too
    parser.read_string(text)
    found = set()
    for section in parser.sections():
        for key in parser[section]:
            spec, _ = split_key(section, key, str(EXAMPLE))  # raises on an unknown key
            found.add((spec.section, spec.key))
    assert found == {(s.section, s.key) for s in SCHEMA}


def test_cluster_values_load(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("sql_alchemy_conn", "fernet_key", "broker_url", "secret_key"):
        (secrets / name).write_text(f"{name}-value\n")
    (secrets / "sql_alchemy_conn").write_text("postgresql://haflow:pw@postgres/haflow\n")
    cfg = tmp_path / "haflow.cfg"
    cfg.write_text(EXAMPLE.read_text().replace("/etc/haflow/secrets/", f"{secrets}/"))
    settings = load_settings(home=tmp_path, environ={}, config_file=cfg)
    assert settings.core.executor == "celery"
    assert settings.core.sql_alchemy_conn == "postgresql://haflow:pw@postgres/haflow"
    assert settings.celery.broker_url == "broker_url-value"
    assert settings.webserver.secret_key == "secret_key-value"
    assert settings.election.zk_hosts == "zk1:2181,zk2:2181,zk3:2181"


def test_drift_is_detected() -> None:
    text = EXAMPLE.read_text()
    missing = re.sub(r"(?m)^# loop_interval = .*\n", "", text)
    assert "loop_interval" in drift(missing)
    changed = text.replace("# queued_timeout = 30.0", "# queued_timeout = 60.0")
    assert "queued_timeout" in drift(changed)
    unknown = text.replace("[scheduler]\n", "[scheduler]\n\n# Not a setting. (int)\n# bogus = 1\n")
    assert "bogus" in drift(unknown)
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        split_key("scheduler", "bogus", "example")
