"""The ZooKeeper elector: kazoo's election recipe under `/haflow/<cluster>/election`.

Connection states, as kazoo documents them: while SUSPENDED a client must not assume its lock
is valid, so `poll` answers False at once (the leader stops writing) until CONNECTED returns.
LOST means the session, and with it our candidate node, is gone: we resign and join again.
kazoo reports LOST only when it reconnects, so a leader SUSPENDED for longer than its session
timeout resigns on its own timer. State listeners only flip flags and set events; they never
block kazoo's event thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl

from haflow.election.base import Elector

log = logging.getLogger(__name__)


def election_path(cluster: str) -> str:
    return f"/haflow/{cluster}/election"


class ZooKeeperElector(Elector):
    mode = "zookeeper"

    def __init__(
        self,
        hosts: str,
        cluster: str,
        holder: str,
        *,
        session_timeout_s: float = 6.0,
        auth: str = "",
        fallback_note: str = "no database fallback: no leadership until ZooKeeper answers",
        connect_timeout_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = hosts
        self.path = election_path(cluster)
        self.holder = holder
        self.session_timeout_s = session_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.monotonic = monotonic
        self.client = make_client(hosts, session_timeout_s, auth)
        self._connected = False
        self._away_since: float | None = monotonic()
        self._won = False
        self._resign = threading.Event()
        self._stopped = threading.Event()
        self._children: list[str] = []
        self._election: Any = None
        self._watching = False
        self.fallback_note = fallback_note
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and join the election in the background; never fails on an absent ensemble.

        An ensemble unreachable at start is reported (which hosts, what error) and kazoo keeps
        trying; the failover policy meanwhile decides whether the database lock takes over.
        """
        self.client.add_listener(self._on_state)
        self.client.start_async()
        self._thread = threading.Thread(target=self._campaign, name="zk-election", daemon=True)
        self._thread.start()
        deadline = self.monotonic() + self.connect_timeout_s
        while not self._connected and self.monotonic() < deadline:
            time.sleep(0.05)
        if not self._connected:
            log.error(
                "ZooKeeper unreachable at start (%s); kazoo keeps retrying; %s",
                probe_hosts(self.hosts),
                self.fallback_note,
            )

    def stop(self) -> None:
        self._stopped.set()
        self._resign.set()
        if self._election is not None:
            self._election.cancel()
        if self._thread is not None:
            self._thread.join(1.0)  # connected: it leaves the election at once
        try:
            self.client.stop()  # ends the session (our node goes) and fails pending calls
        finally:
            if self._thread is not None:
                self._thread.join(5.0)
            self.client.close()

    def release(self) -> None:
        """Give up leadership now; the campaign thread rejoins at the back of the queue."""
        self._won = False
        self._resign.set()

    # -- what the scheduler asks ---------------------------------------------------------------

    def poll(self, now: datetime) -> bool:
        if not self.connected:
            if self._won and self.disconnected_for() >= self.session_timeout_s:
                log.warning("suspended for longer than the session timeout: resigning")
                self._resign.set()
            return False
        return self._won and not self._resign.is_set()

    @property
    def connected(self) -> bool:
        # kazoo sets client.state before it calls any listener, so this sees a SUSPENDED
        # connection even while our own listener has yet to run
        return self._connected and self.client.state == KazooState.CONNECTED

    @property
    def connection_state(self) -> str:
        """kazoo's connection state in lower case: connected, suspended or lost."""
        return str(self.client.state).lower()

    def disconnected_for(self) -> float:
        since = self._away_since
        return 0.0 if since is None else self.monotonic() - since

    def position(self) -> int | None:
        """Our place in the candidates' order (0 leads), from the last children watch."""
        node = getattr(getattr(self._election, "lock", None), "node", None)
        if node is None or node not in self._children:
            return None
        return self._children.index(node)

    # -- kazoo side ----------------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            self._connected = True
            self._away_since = None
        else:
            self._connected = False
            if self._away_since is None:
                self._away_since = self.monotonic()
            if state == KazooState.LOST:
                self._resign.set()

    def _campaign(self) -> None:
        """Run the election recipe until stopped; rejoin after every resignation or error."""
        while not self._stopped.is_set():
            self._resign.clear()
            try:
                self.client.ensure_path(self.path)
                if not self._watching:
                    self.client.ChildrenWatch(self.path, self._on_children)
                    self._watching = True
                self._election = self.client.Election(self.path, self.holder)
                self._election.run(self._lead)
            except KazooException as exc:
                log.warning("election interrupted: %s: %s", type(exc).__name__, exc)
            finally:
                self._won = False
            self._stopped.wait(0.2)

    def _lead(self) -> None:
        if self._resign.is_set() or self._stopped.is_set():
            return
        log.info("won the ZooKeeper election at %s", self.path)
        self._won = True
        self._resign.wait()
        self._won = False

    def _on_children(self, children: list[str]) -> bool:
        self._children = sorted(children, key=lambda c: c[-10:])
        return not self._stopped.is_set()


def make_client(hosts: str, session_timeout_s: float, auth: str = "") -> KazooClient:
    """A kazoo client as haflow uses them: endless reconnects, digest auth and ACL if set."""
    kwargs: dict[str, Any] = {}
    if auth:
        user, _, password = auth.partition(":")
        kwargs["auth_data"] = [("digest", auth)]
        kwargs["default_acl"] = [make_digest_acl(user, password, all=True)]
    return KazooClient(
        hosts=hosts,
        timeout=session_timeout_s,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
        **kwargs,
    )


def probe_hosts(hosts: str, timeout_s: float = 1.0) -> str:
    """One line per ZooKeeper host saying whether a TCP connection to it works, and if not why."""
    servers = hosts.split("/", 1)[0]
    results = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            results.append(f"{server}: TCP ok")
        except (OSError, ValueError) as exc:
            results.append(f"{server}: {exc}")
    return "; ".join(results)


def connection_alive(client: KazooClient) -> bool:
    """Whether kazoo's connection routine of a started `client` still runs: False once the
    client was stopped or gave up connecting for good (a client that keeps retrying is alive).
    kazoo has no public call for it; its routine is the thread `_connection._connection_routine`."""
    routine = getattr(getattr(client, "_connection", None), "_connection_routine", None)
    return routine is not None and bool(routine.is_alive())
