"""A real ZooKeeper ensemble on loopback, built from Debian's ``zookeeper`` package.

Each member is its own ``QuorumPeerMain`` JVM in its own process session, so tests, benchmarks
and the chaos harness can stop, kill or pause one member at a time. Every ensemble started here
is stopped at interpreter exit even if its owner forgets to. The fault helpers at the bottom
(``expire_session``, ``drop_connection``) act on a live ``KazooClient`` the way a real outage
would: the session really expires on the server, the TCP connection really goes away.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from tests.ports import free_ports

JAVA_DIR = Path("/usr/share/java")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# zookeeper.jar's manifest Class-Path names its runtime dependencies (netty, jute, metrics, ...)
# but no SLF4J binding; Debian's package logs through log4j 1.2, so the binding is added here.
LOGGING_JARS = ("slf4j-log4j12.jar", "log4j-1.2.jar")
SERVING_MODES = ("leader", "follower", "standalone")
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] %m%n
"""


class ZkUnavailable(RuntimeError):
    """Java or the Debian ``zookeeper`` package is missing on this machine."""


class ZkEnsembleError(RuntimeError):
    """The ensemble (or one member) did not reach the state asked for in time."""


def classpath() -> str:
    """The classpath Debian's package needs, or ``ZkUnavailable`` naming what is missing."""
    if shutil.which("java") is None:
        raise ZkUnavailable("no `java` on PATH; install default-jre-headless")
    jars = [JAVA_DIR / "zookeeper.jar", *(JAVA_DIR / name for name in LOGGING_JARS)]
    missing = [str(jar) for jar in jars if not jar.exists()]
    if missing:
        raise ZkUnavailable(
            f"missing {', '.join(missing)}; run `bash scripts/test-services.sh` as root "
            "(installs Debian's zookeeper package)"
        )
    return os.pathsep.join(str(jar) for jar in jars)


def four_letter_word(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a four-letter command to a member; return its answer ('' if it is unreachable)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class MemberPorts:
    client: int
    peer: int
    election: int


class _Member:
    """One ZooKeeper server: its directory, config, ports and (when running) its JVM."""

    def __init__(self, myid: int, directory: Path, ports: MemberPorts) -> None:
        self.myid = myid
        self.directory = directory
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "zoo.cfg"

    @property
    def log(self) -> Path:
        return self.directory / "zookeeper.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self, settings: dict[str, object], servers: Iterable[str]) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{self.myid}\n")
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines += [f"dataDir={data}", f"clientPort={self.ports.client}", *servers]
        self.config.write_text("\n".join(lines) + "\n")
        (self.directory / "log4j.properties").write_text(LOG4J_PROPERTIES)

    def start(self, cp: str) -> None:
        if self.running:
            return
        command = [
            "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j.configuration=file:{self.directory / 'log4j.properties'}",
            "-Dzookeeper.snapshot.trust.empty=true",
            "-cp",
            cp,
            MAIN_CLASS,
            str(self.config),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; a paused member is resumed first."""
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def mode(self) -> str:
        """'leader', 'follower', 'standalone', or '' when the member does not serve."""
        for line in four_letter_word(self.ports.client, "srvr").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return ""

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


_LIVE: set[ZkEnsemble] = set()


@atexit.register
def _stop_all() -> None:
    for ensemble in list(_LIVE):
        ensemble.stop()


class ZkEnsemble:
    """A ``size``-member ZooKeeper ensemble on 127.0.0.1 whose files live under ``base_dir``.

    Members are numbered 0..size-1 (their ``myid`` is index + 1). Ports come from ``base_port``
    (member i uses base_port+3i .. base_port+3i+2) or, by default, from free ports picked now.
    Sessions between ``min_session_ms`` and ``max_session_ms`` are granted as asked.
    """

    def __init__(
        self,
        base_dir: Path,
        size: int = 3,
        base_port: int | None = None,
        tick_ms: int = 200,
        min_session_ms: int = 1000,
        max_session_ms: int = 60000,
    ) -> None:
        if size < 1:
            raise ValueError("an ensemble needs at least one member")
        self.base_dir = Path(base_dir)
        self.size = size
        self.tick_ms = tick_ms
        ports = (
            free_ports(3 * size) if base_port is None else [base_port + n for n in range(3 * size)]
        )
        self.members = [
            _Member(i + 1, self.base_dir / f"member-{i}", MemberPorts(*ports[3 * i : 3 * i + 3]))
            for i in range(size)
        ]
        self._settings: dict[str, object] = {
            "tickTime": tick_ms,
            "initLimit": 25,
            "syncLimit": 15,
            "minSessionTimeout": min_session_ms,
            "maxSessionTimeout": max_session_ms,
            "clientPortAddress": "127.0.0.1",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "forceSync": "no",
            "preAllocSize": 1024,
            "maxClientCnxns": 0,
        }

    # -- addresses --------------------------------------------------------------------------

    @property
    def hosts(self) -> str:
        return ",".join(self.member_hosts(i) for i in range(self.size))

    def hosts_with_chroot(self, chroot: str) -> str:
        return self.hosts + "/" + chroot.strip("/")

    def member_hosts(self, i: int) -> str:
        return f"127.0.0.1:{self.members[i].ports.client}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until all of them serve clients."""
        cp = classpath()
        servers = [
            f"server.{m.myid}=127.0.0.1:{m.ports.peer}:{m.ports.election}" for m in self.members
        ]
        for member in self.members:
            member.write_config(self._settings, servers)
        _LIVE.add(self)
        try:
            for member in self.members:
                member.start(cp)
            self.wait_serving(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL)."""
        for member in self.members:
            member.signal(signal.SIGTERM)
        for member in self.members:
            member.stop()
        _LIVE.discard(self)

    def start_member(self, i: int, wait: bool = True, timeout: float = 30.0) -> None:
        """Start member ``i``; with ``wait``, until it serves (needs a quorum to be up)."""
        self.members[i].start(classpath())
        if wait:
            self.wait_serving([i], timeout=timeout)

    def stop_member(self, i: int) -> None:
        self.members[i].stop()

    def kill_member(self, i: int) -> None:
        """SIGKILL member ``i``: no shutdown hook, no goodbye to its peers or clients."""
        self.members[i].kill()

    def pause_member(self, i: int) -> None:
        """SIGSTOP member ``i``: its sockets stay open but it answers nothing."""
        self.members[i].signal(signal.SIGSTOP)

    def resume_member(self, i: int) -> None:
        self.members[i].signal(signal.SIGCONT)

    def running(self) -> list[int]:
        return [i for i, member in enumerate(self.members) if member.running]

    def ensure_running(self, timeout: float = 30.0) -> None:
        """Restart (and resume) whatever a test stopped, then wait until all members serve."""
        for i, member in enumerate(self.members):
            member.signal(signal.SIGCONT)
            if not member.running:
                self.start_member(i, wait=False)
        self.wait_serving(timeout=timeout)

    def modes(self) -> dict[int, str]:
        return {i: member.mode() for i, member in enumerate(self.members)}

    def wait_serving(self, members: Iterable[int] | None = None, timeout: float = 30.0) -> None:
        """Wait until each of ``members`` (default: all) is leader, follower or standalone."""
        chosen = list(range(self.size) if members is None else members)

        def serving() -> bool:
            return all(self.members[i].mode() in SERVING_MODES for i in chosen)

        if wait_until(serving, timeout, interval=0.1):
            return
        dead = [i for i in chosen if not self.members[i].running]
        tails = "\n".join(
            f"--- member {i} ({self.members[i].log}) ---\n{self.members[i].log_tail()}"
            for i in chosen
        )
        raise ZkEnsembleError(
            f"ZooKeeper members {chosen} did not serve within {timeout:.0f}s "
            f"(modes {self.modes()}, exited {dead}). Log tails:\n{tails}"
        )

    def __enter__(self) -> ZkEnsemble:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- fault helpers for live clients ---------------------------------------------------------


def fresh_chroot() -> str:
    return f"/haflow-test-{uuid.uuid4().hex[:12]}"


class StateRecorder:
    """Records every state a ``KazooClient`` reports, and waits for one of them."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self.states: list[str] = []
        self._changed = threading.Condition()
        client.add_listener(self)

    def __call__(self, state: str) -> None:
        with self._changed:
            self.states.append(state)
            self._changed.notify_all()

    def wait_for(self, state: str, timeout: float, after: int = 0) -> bool:
        """Wait until ``state`` is recorded at an index >= ``after``."""
        with self._changed:
            return self._changed.wait_for(lambda: state in self.states[after:], timeout)

    def close(self) -> None:
        self.client.remove_listener(self)


def _hosts_of(client: KazooClient) -> str:
    return ",".join(f"{host}:{port}" for host, port in client.hosts)


def expire_session(client: KazooClient, timeout: float = 15.0) -> None:
    """Expire ``client``'s session on the server and wait until the client reports LOST.

    A second client joins the same session (same id and password) and closes it, which ends the
    session for the ensemble: ephemeral nodes go, and the original client learns of it on its
    next reconnect.
    """
    client_id = client.client_id
    if client_id is None:
        raise ZkEnsembleError("expire_session needs a connected client")
    recorder = StateRecorder(client)
    twin = KazooClient(hosts=_hosts_of(client), client_id=client_id)
    try:
        twin.start(timeout=timeout)
        twin.stop()
    finally:
        twin.close()
    try:
        if not recorder.wait_for(KazooState.LOST, timeout):
            raise ZkEnsembleError(
                f"client did not see its session expire within {timeout:.0f}s "
                f"(states seen: {recorder.states})"
            )
    finally:
        recorder.close()


def drop_connection(client: KazooClient, timeout: float = 15.0) -> None:
    """Cut ``client``'s TCP connection and wait until it reports SUSPENDED.

    The session survives: kazoo reconnects (to any member) and reports CONNECTED again on its own.
    """
    sock = getattr(client._connection, "_socket", None)
    if sock is None or not client.connected:
        raise ZkEnsembleError("drop_connection needs a connected client")
    recorder = StateRecorder(client)
    try:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        if not recorder.wait_for(KazooState.SUSPENDED, timeout):
            raise ZkEnsembleError(
                f"client was not SUSPENDED within {timeout:.0f}s (states seen: {recorder.states})"
            )
    finally:
        recorder.close()


def _die_with_parent() -> None:
    """A member outlives no test run, even one killed with SIGKILL (no atexit then)."""
    from haflow.worker.process import set_parent_death_signal

    set_parent_death_signal()
