"""Event-driven scheduling: a finished attempt wakes the leader at once (PostgreSQL NOTIFY).

Workers report an attempt's end in a transaction that also runs `pg_notify(<channel>)`, so the
notification is delivered exactly when the report commits. The leader listens on its own
connection and sets the loop's wake event; downstream tasks then start without waiting for
the polling interval. On other databases (and while this listener is reconnecting) the loop
simply polls every [scheduler] loop_interval: nothing depends on a notification arriving.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from haflow.metastore.engine import libpq_conninfo
from haflow.metastore.repository.attempts import notify_channel

log = logging.getLogger(__name__)


class NotifyListener:
    def __init__(self, url: str, cluster: str, wake: threading.Event) -> None:
        # every host of a multi-host URL, and its target_session_attrs: the primary's
        self.conninfo = libpq_conninfo(url, application_name="haflow-wakeup")
        self.channel = notify_channel(cluster)
        self.wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self.name = "PostgreSQL LISTEN wake-up"

    def start(self) -> None:
        self._thread.start()

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN %s failed (%s); polling until it reconnects", self.channel, exc)
                self._stop.wait(2.0)


def make_wakeup(url: str, cluster: str, wake: threading.Event) -> NotifyListener | None:
    return (
        NotifyListener(url, cluster, wake)
        if make_url(url).get_backend_name() == "postgresql"
        else None
    )
