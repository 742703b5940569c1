"""The leader's view of which workers' ZooKeeper sessions ended: the hint that lets
`haflow.core.reclamation` reclaim their attempts at the self-fence point plus a margin instead
of the full heartbeat timeout. A hint only: an attempt whose metastore heartbeat is fresh is
never reclaimed, whatever this watch says.

A worker counts as gone when this watch saw its node and then saw it disappear. Nothing is
reported gone while our own connection is not CONNECTED (the children list could be stale).
"""

from __future__ import annotations

import logging
import threading

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException

from haflow.election.zookeeper import connection_alive, make_client
from haflow.worker.registry import workers_path

log = logging.getLogger(__name__)


class ZkWorkerWatch:
    def __init__(
        self, hosts: str, cluster: str, *, session_timeout_s: float, auth: str = ""
    ) -> None:
        self.path = workers_path(cluster)
        self.client: KazooClient = make_client(hosts, session_timeout_s, auth)
        self._present: set[str] = set()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._watching = False
        self.name = "ZooKeeper worker watch"
        self._started = False

    def start(self) -> None:
        self.client.start_async()
        self._started = True

    def healthy(self) -> bool:
        """False once kazoo's connection routine has ended (the client was stopped, or it gave
        up connecting for good); a disconnected client that keeps retrying is healthy."""
        if not self._started:
            return True
        return connection_alive(self.client)

    def stop(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    def gone(self) -> frozenset[str]:
        """Workers whose node this watch saw vanish; empty while not connected."""
        if self.client.state != KazooState.CONNECTED:
            return frozenset()
        if not self._watching:
            self._watch()
        with self._lock:
            return frozenset(self._seen - self._present)

    def _watch(self) -> None:
        try:
            self.client.ensure_path(self.path)
            self.client.ChildrenWatch(self.path, self._on_children)
            self._watching = True
        except KazooException as exc:
            log.warning("cannot watch %s: %s", self.path, exc)

    def _on_children(self, children: list[str]) -> None:
        with self._lock:
            self._present = set(children)
            self._seen |= self._present
