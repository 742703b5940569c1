"""The /metrics endpoint of a scheduler or worker: a service with start/stop/healthy.

It serves, on its own port, the metric files of the daemon and of every process it forked
(multiprocess mode, see `process`), the collectors read live at scrape time, and the daemon's
own process figures (memory, CPU, open files).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from haflow.errors import ConfigError
from haflow.metrics.process import remove_directory

log = logging.getLogger(__name__)


class MetricsServer:
    def __init__(
        self,
        port: int,
        directory: Path,
        collectors: Sequence[Collector] = (),
        *,
        addr: str = "0.0.0.0",
        setting: str = "metrics_port",
    ) -> None:
        self.port = port
        self.addr = addr
        self.directory = directory
        self.collectors = list(collectors)
        self.setting = setting  # named in the error when the port is taken
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.name = f"metrics listener on port {port}"

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        for collector in self.collectors:
            registry.register(collector)
        ProcessCollector(registry=registry)
        return registry

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, self.addr, self.registry())
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self.addr}:{self.port}: {exc}; "
                f"set {self.setting} to a free port (0 turns the endpoint off)"
            ) from exc
        log.info(
            "metrics on http://%s:%s/metrics; multiprocess directory %s",
            self.addr,
            self.port,
            self.directory,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        remove_directory(self.directory)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
