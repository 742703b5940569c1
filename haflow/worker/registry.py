"""A worker's ephemeral ZooKeeper node, `/haflow/<cluster>/workers/<worker id>`.

The node lives exactly as long as the worker's ZooKeeper session: a fast hint of the worker's
death to the leader (`scheduler.worker_watch`), which then reclaims its attempts as soon as
their metastore heartbeats pass the worker's self-fence point plus a margin, instead of waiting
for the full `[worker] timeout` (`haflow.core.reclamation`). A hint only: the heartbeat is the
truth, so a worker cut off from ZooKeeper alone keeps running its attempts, and the leader
never reclaims one whose heartbeat is fresh. After a LOST session the node is created again
once the client reconnects. Listeners only flip flags.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError

from haflow.election.zookeeper import connection_alive, make_client

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
    ) -> None:
        self.path = f"{workers_path(cluster)}/{worker_id}"
        self.client: KazooClient = make_client(hosts, session_timeout_s, auth)
        self.data = json.dumps({"hostname": socket.getfqdn(), "pid": os.getpid()}).encode()
        self._missing = threading.Event()
        self._missing.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="zk-worker-node", daemon=True)
        self.name = "ZooKeeper worker node"

    def healthy(self) -> bool:
        """False once its keeper thread or kazoo's connection routine has ended."""
        if self._thread.ident is None:
            return True  # not started
        return self._thread.is_alive() and connection_alive(self.client)

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
