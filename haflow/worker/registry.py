"""A worker's ephemeral ZooKeeper node, `/haflow/<cluster>/workers/<worker id>`.

The node lives exactly as long as the worker's ZooKeeper session, so the leader learns of a
dead worker when its session expires, without waiting for attempt heartbeats to age. After a
LOST session the node is created again once the client reconnects. Listeners only flip flags.

Because the leader reclaims on the node's disappearance, a worker cut off from ZooKeeper must
stop its attempts before its session can expire: `cut_since` (shared with the processes that
run attempts) records since when a registered worker has been disconnected, and the runner
self-fences once that reaches `fence_after(session timeout)`. kazoo reports SUSPENDED at most
two thirds of the session timeout after the last contact, so fencing a third of the timeout
minus half a second later comes before the server can expire the session.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError

from haflow.election.zookeeper import make_client

log = logging.getLogger(__name__)


def workers_path(cluster: str) -> str:
    return f"/haflow/{cluster}/workers"


class ZkWorkerNode:
    def __init__(
        self,
        hosts: str,
        cluster: str,
        worker_id: str,
        *,
        session_timeout_s: float,
        auth: str = "",
        cut_since: Any = None,
    ) -> None:
        self.path = f"{workers_path(cluster)}/{worker_id}"
        self.cut_since = cut_since  # a shared double: monotonic time cut off since, 0 = not
        self._registered = False
        self.client: KazooClient = make_client(hosts, session_timeout_s, auth)
        self.data = json.dumps({"hostname": socket.getfqdn(), "pid": os.getpid()}).encode()
        self._missing = threading.Event()
        self._missing.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="zk-worker-node", daemon=True)

    def start(self, wait_s: float = 5.0) -> None:
        """Connect and register; waits up to `wait_s` so the node exists before the worker
        runs its first attempt (it keeps trying in the background after that)."""
        self.client.add_listener(self._on_state)
        self.client.start_async()
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while self._missing.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._missing.is_set():
            log.error(
                "not registered in ZooKeeper within %.0f s (%s); still trying", wait_s, self.path
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.client.stop()  # ends the session: the node goes at once
        finally:
            self.client.close()

    @property
    def connection_state(self) -> str:
        """kazoo's connection state in lower case: connected, suspended or lost."""
        return str(self.client.state).lower()

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._missing.set()
        if state != KazooState.CONNECTED and self._registered:
            self._mark_cut()
        elif state == KazooState.CONNECTED and not self._missing.is_set():
            self._mark_connected()

    def _mark_cut(self) -> None:
        if self.cut_since is not None and not self.cut_since.value:
            self.cut_since.value = time.monotonic()

    def _mark_connected(self) -> None:
        if self.cut_since is not None:
            self.cut_since.value = 0.0

    def _keep(self) -> None:
        while not self._stop.wait(0.05 if self._missing.is_set() else 0.5):
            if not self._missing.is_set() or self.client.state != KazooState.CONNECTED:
                continue
            try:
                self.client.create(self.path, self.data, ephemeral=True, makepath=True)
                log.info("registered in ZooKeeper at %s", self.path)
            except NodeExistsError:
                log.warning(
                    "%s exists: another worker uses this name, or our old session "
                    "has not expired yet; retrying",
                    self.path,
                )
                self._stop.wait(0.5)
                continue
            except KazooException as exc:
                log.warning("could not register %s: %s", self.path, exc)
                self._stop.wait(0.5)
                continue
            self._missing.clear()
            self._registered = True
            self._mark_connected()


def fence_after(session_timeout_s: float) -> float:
    """Seconds of ZooKeeper disconnection after which a worker stops its attempts."""
    return max(0.2, session_timeout_s / 3 - 0.5)
