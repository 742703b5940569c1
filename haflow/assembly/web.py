"""`haflow webserver`: the app under gunicorn, and this webserver's heartbeat row.

Gunicorn's arbiter forks `workers` processes, each building its own app (no preloading, so no
connection crosses a fork). SIGHUP reloads the workers gracefully, SIGTERM stops after the
requests in flight. The arbiter keeps a `webserver` row fresh (host, port, a fingerprint of the
secret key) for the Cluster page and `haflow doctor`, and deletes it on a clean stop.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from haflow.assembly.secrets import check_secrets_at_start
from haflow.config import Settings
from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from haflow.metrics.endpoint import instrument
from haflow.status import WEBSERVER_HEARTBEAT_S
from haflow.web.credentials import fingerprint

log = logging.getLogger(__name__)


class WebserverHeartbeat:
    """Keeps this webserver's row in the metastore fresh."""

    name = "webserver heartbeat"

    def __init__(self, settings: Settings, wid: str, interval_s: float = WEBSERVER_HEARTBEAT_S):
        self.settings = settings
        self.wid = wid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-heartbeat", daemon=True)
        engine = create_engine(settings.core.sql_alchemy_conn, pool_size=1)
        self.repo = Repository(engine, cluster=settings.scheduler.cluster, actor=wid)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        try:
            self.repo.members.remove_webserver(self.wid)
        except Exception as exc:  # the row then ages out as dead; nothing else depends on it
            log.warning("could not remove webserver row %s: %s", self.wid, exc)
        self.repo.engine.dispose()

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def beat(self) -> None:
        ws = self.settings.webserver
        self.repo.members.heartbeat_webserver(
            self.wid,
            hostname=self.settings.core.effective_hostname(),
            pid=os.getpid(),
            port=ws.port,
            secret_fingerprint=fingerprint(ws.secret_key),
            now=utcnow(),
        )

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception as exc:  # the metastore may be away for a while; keep trying
                log.warning("webserver heartbeat failed: %s", exc)
            if self._stop.wait(self.interval_s):
                return


class WebApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, hooks: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.hooks = hooks or {}
        super().__init__()

    def load_config(self) -> None:
        ws = self.settings.webserver
        options: dict[str, Any] = {
            "bind": f"{ws.host}:{ws.port}",
            "workers": ws.workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 60,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": self.settings.logging.level.lower(),
            "proc_name": "haflow-webserver",
            **self.hooks,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from haflow.web.app import create_app

        return create_app(self.settings, instrument=instrument)


def run_webserver(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; raises ConfigError on an empty secret key before binding."""
    from haflow.metrics.process import ENV, remove_directory
    from haflow.metrics.webserver import child_exit, prepare_multiprocess_dir
    from haflow.web.app import create_app

    owned = not os.environ.get(ENV)  # a directory given by the operator is theirs to keep
    metrics_dir = prepare_multiprocess_dir()  # before any worker exists: they inherit it
    app = create_app(settings, instrument=instrument)  # bad settings fail before any fork
    check_secrets_at_start(app.extensions["haflow"].repo)
    ws = settings.webserver
    wid = f"{settings.core.effective_hostname()}:{ws.port}"
    heartbeat = WebserverHeartbeat(settings, wid)

    def on_exit(_server: Any) -> None:
        heartbeat.stop()
        if owned:
            remove_directory(metrics_dir)

    hooks = {
        "when_ready": lambda _server: heartbeat.start(),
        "on_exit": on_exit,
        "child_exit": child_exit,
    }
    WebApplication(settings, hooks).run()
