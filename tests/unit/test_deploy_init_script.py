"""deploy/bin/haflow-init: migrate, create the users, make the metrics token once.

Run against a stand-in `haflow` on PATH that logs its arguments, twice, as compose does on a
second `up`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "bin" / "haflow-init"

FAKE_HAFLOW = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
if [ "$1 $2" = "users token" ]; then echo "token-$$"; fi
if [ "$1 $2 $3" = "users create prometheus" ]; then test -s "$7" || exit 9; fi
"""


def run_init(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "haflow").write_text(FAKE_HAFLOW)
    (bin_dir / "haflow").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
        "HAFLOW_METRICS_TOKEN_FILE": str(tmp_path / "token"),
        "HAFLOW_ADMIN_USER": "root-admin",
    }
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_init_makes_users_and_one_token(tmp_path: Path) -> None:
    first = run_init(tmp_path)
    assert first.returncode == 0, first.stderr
    token = (tmp_path / "token").read_text()
    assert token.startswith("token-")
    second = run_init(tmp_path)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "token").read_text() == token  # kept, not minted again
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls[0] == "db migrate"
    assert calls[1] == (
        "users create root-admin --role Admin --password-file /run/secrets/admin_password "
        "--exists-ok"
    )
    assert calls[2].startswith("users create prometheus --role Viewer --password-file ")
    assert calls.count("users token prometheus --name prometheus-scrape") == 1
    assert calls.count("db migrate") == 2


def test_init_stops_at_the_first_failure(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    fake = FAKE_HAFLOW.replace('echo "$*" >> "$FAKE_LOG"', 'echo "$*" >> "$FAKE_LOG"; exit 4')
    out = subprocess.run(
        [
            "sh",
            "-c",
            f'cat > "{tmp_path}/bin/haflow" <<"X"\n{fake}X\nchmod +x "{tmp_path}/bin/haflow"',
        ],
        check=True,
    )
    assert out.returncode == 0
    env = {**os.environ, "PATH": f"{tmp_path}/bin:{os.environ['PATH']}"}
    env |= {"FAKE_LOG": str(tmp_path / "log"), "HAFLOW_METRICS_TOKEN_FILE": str(tmp_path / "t")}
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 4
    assert (tmp_path / "log").read_text().splitlines() == ["db migrate"]
    assert not (tmp_path / "t").exists()
