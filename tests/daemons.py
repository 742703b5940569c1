"""The one way tests start and stop daemons as processes: each in a session (process group) of
its own, its output appended to a log file, stopped with its whole group whatever state it is
in (running, paused or gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HAFLOW = (sys.executable, "-m", "haflow.cli.main")
"""The `haflow` command of the interpreter running the tests."""


def launch(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `args` in a new session, stdout and stderr appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(args), env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_haflow(*args: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`haflow ARGS...` as a daemon (see `launch`)."""
    return launch([*HAFLOW, *args], env, log)


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 20.0) -> None:
    """SIGTERM the process group (SIGCONT first: it may be paused), SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
