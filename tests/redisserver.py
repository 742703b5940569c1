"""Real Redis servers of the tests' own: each a `redis-server` process on a free loopback port.

`PrivateRedis` is one test's (it may be stopped, frozen or given a password). `redis_url(index)`
is database `index` of this test process's own server, started on first use and stopped at
exit: tests running in parallel processes (pytest-xdist) never flush, restart or read each
other's databases, as they would on the machine's one server on 6379.
"""

from __future__ import annotations

import atexit
import signal
import socket
import subprocess
import time

from tests.ports import free_port
from tests.waiting import wait_for


class RedisMissing(RuntimeError):
    """No `redis-server` to start (scripts/test-services.sh installs it)."""


class PrivateRedis:
    """A redis-server of the caller's own, on a free port."""

    def __init__(self, password: str = "") -> None:
        self.port = free_port()
        self.password = password
        self.start()

    def start(self) -> None:
        """Start (or start again, on the same port) with nothing kept on disk."""
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        try:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise RedisMissing(f"cannot start redis-server: {exc}") from exc
        wait_for("the private Redis to listen", self._listening, 15)

    def restart(self, down_s: float = 1.0) -> None:
        """Stop the server as an operator's restart does (its clients' connections drop), keep
        it down `down_s`, and start it again on the same port."""
        self.close()
        time.sleep(down_s)
        self.start()

    def url(self, index: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{index}"

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(10)


_OWN: list[PrivateRedis] = []


def own_server() -> PrivateRedis:
    """This process's own server (started on first use, stopped at exit)."""
    if not _OWN:
        _OWN.append(PrivateRedis())
        atexit.register(_OWN[0].close)
    return _OWN[0]


def redis_url(index: int) -> str:
    """Database `index` of this process's own server."""
    return own_server().url(index)
