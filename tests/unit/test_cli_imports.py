"""The `haflow` command imports a command group's module only when that command is asked for:
`haflow version` and `haflow --help` load no database, broker, coordination or web library, and
the everyday commands load only what they use. Each check runs in a fresh interpreter and looks
at the modules it imported, never at times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from haflow.cli.main import COMMANDS, cli

HEAVY = (
    "sqlalchemy",
    "alembic",
    "celery",
    "kazoo",
    "flask",
    "gunicorn",
    "psycopg",
    "pymysql",
    "cryptography",
    "prometheus_client",
    "croniter",
    "haflow.assembly",
    "haflow.metastore",
    "haflow.scheduler",
    "haflow.web",
    "haflow.worker",
    "haflow.chaos",
    "haflow.doctor",
)

IMPORT_CLI = """
import json, sys
import haflow.cli.main
print(json.dumps(sorted(sys.modules)))
"""

# Runs the entry point as the console script does, then prints the modules it imported.
ENTRY_POINT = """
import json, sys
from haflow.cli.main import main
sys.argv = ["haflow", *sys.argv[1:]]
try:
    main()
finally:
    print(json.dumps(sorted(sys.modules)))
"""

RESOLVE_DAGS_LIST = """
import json, sys
import click
from haflow.cli.main import cli
ctx = click.Context(cli, info_name="haflow")
dags = cli.get_command(ctx, "dags")
assert isinstance(dags, click.Group)
assert dags.get_command(ctx, "list") is not None
print(json.dumps(sorted(sys.modules)))
"""


def imported(tmp_path: Path, code: str, *args: str) -> tuple[set[str], str]:
    """The modules a fresh interpreter running `code` with `args` imported, and its output."""
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    *output, modules = done.stdout.splitlines()
    return set(json.loads(modules)), "\n".join(output)


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if any(m == p or m.startswith(f"{p}.") for m in modules))


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    modules, _ = imported(tmp_path, IMPORT_CLI)
    assert "haflow.cli.main" in modules
    assert loaded(modules, HEAVY) == []


def test_haflow_version_loads_no_heavy_module(tmp_path: Path) -> None:
    modules, output = imported(tmp_path, ENTRY_POINT, "version")
    assert output == "0.1.0"
    assert loaded(modules, HEAVY) == []


def test_haflow_help_lists_every_command_without_loading_them(tmp_path: Path) -> None:
    modules, output = imported(tmp_path, ENTRY_POINT, "--help")
    listed = [line.split()[0] for line in output.split("Commands:")[1].splitlines() if line]
    assert listed == sorted([*COMMANDS, "version"])
    assert loaded(modules, HEAVY) == []


def test_resolving_dags_list_loads_no_broker_coordination_web_or_migrations(
    tmp_path: Path,
) -> None:
    modules, _ = imported(tmp_path, RESOLVE_DAGS_LIST)
    assert "haflow.cli.dags" in modules
    assert loaded(modules, ("celery", "kazoo", "flask", "alembic")) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_short_help_is_the_commands_own(name: str) -> None:
    """`haflow --help` shows a lazy command by the short help kept in COMMANDS: it must be the
    one the command itself gives, shortened alike at every terminal width."""
    lazy = COMMANDS[name]
    command = lazy.load()
    assert command.name == name
    assert lazy.short_help == command.get_short_help_str(limit=10_000)
    stand_in = click.Command(name, help=lazy.short_help)
    for limit in range(10, 120):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_backfill_is_a_subcommand_of_dags() -> None:
    from haflow.cli.backfill import backfill

    ctx = click.Context(cli, info_name="haflow")
    dags = cli.get_command(ctx, "dags")
    assert isinstance(dags, click.Group)
    assert dags.get_command(ctx, "backfill") is backfill
