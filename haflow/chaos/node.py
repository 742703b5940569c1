"""PID 1 of a master node: runs the node's daemons (scheduler, webserver) side by side.

`docker kill -s TERM` reaches PID 1 only, so this forwards SIGTERM/SIGINT to every daemon; when
one daemon exits, the others are stopped too and the node exits with the first one's code, so a
node is either whole or down, never half alive.

    python -m haflow.chaos.node 'haflow scheduler' 'haflow webserver --port 8080'
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

STOP_GRACE_S = 10.0


def supervise(commands: Sequence[str]) -> int:
    procs = [subprocess.Popen(shlex.split(c)) for c in commands]

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(p.poll() is None for p in procs):
        time.sleep(0.2)
    first = next(p for p in procs if p.returncode is not None)
    print(f"node: `{first.args!r}` exited ({first.returncode}); stopping the rest", flush=True)
    _stop(procs)
    return first.returncode or 0


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
