"""Observations made from the host while faults happen, recorded for the checker.

- `fenced_transaction`: whether a node's scheduler holds an open transaction that has locked the
  `leader` row (the fencing check of every scheduling transaction), read from PostgreSQL's own
  `pg_stat_activity` and `pg_locks`: a fault injected while it is open lands mid-transaction.
- `Prober`: a thread that sends requests through haproxy at a steady pace and appends each
  one's start time and result to the cluster's `requests.jsonl` (the P8 evidence).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

OPEN_FENCED_TX = text(
    """
    SELECT a.pid, a.state, a.xact_start, a.application_name, a.wait_event_type, a.wait_event,
           left(a.query, 160) AS query,
           extract(epoch FROM clock_timestamp() - a.xact_start) AS age_s
    FROM pg_stat_activity a
    JOIN pg_locks l ON l.pid = a.pid
    WHERE a.client_addr = CAST(:addr AS inet)
      AND a.xact_start IS NOT NULL
      AND l.locktype = 'relation'
      AND l.relation = CAST('leader' AS regclass)
      AND l.mode = 'RowExclusiveLock'
      AND l.granted
    ORDER BY a.xact_start
    LIMIT 1
    """
)


def fenced_transaction(conn: Any, address: str) -> dict[str, Any] | None:
    """The open transaction of the node at `address` that holds the `leader` row, if any:
    backend pid, state, xact_start (ISO), age in seconds. `conn` is an autocommit connection,
    so each call sees a fresh snapshot of the server's activity."""
    row = conn.execute(OPEN_FENCED_TX, {"addr": address}).mappings().first()
    if row is None:
        return None
    return {
        "backend_pid": int(row["pid"]),
        "state": str(row["state"]),
        "xact_start": row["xact_start"].isoformat(),
        "xact_age_s": round(float(row["age_s"]), 4),
        "wait": f"{row['wait_event_type'] or ''}:{row['wait_event'] or ''}",
        "query": str(row["query"]),
    }


ACTIVITY = text(
    """
    SELECT host(a.client_addr) AS addr, a.pid, a.application_name, a.state, a.wait_event_type,
           a.wait_event, a.xact_start, extract(epoch FROM clock_timestamp() - a.xact_start)
           AS xact_age_s, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) AS query
    FROM pg_stat_activity a
    WHERE a.client_addr = ANY(CAST(:addrs AS inet[]))
      AND (a.xact_start IS NOT NULL OR a.state <> 'idle')
    ORDER BY a.xact_start NULLS LAST
    """
)


def activity(conn: Any, addresses: list[str]) -> list[dict[str, Any]]:
    """The server's view of the backends of `addresses` that are busy or inside a transaction:
    state, what they wait on (a lock, the client), how long their transaction has been open."""
    rows = conn.execute(ACTIVITY, {"addrs": addresses}).mappings().all()
    return [
        {
            "addr": str(r["addr"]),
            "backend_pid": int(r["pid"]),
            "application": str(r["application_name"]),
            "state": str(r["state"]),
            "wait": f"{r['wait_event_type'] or ''}:{r['wait_event'] or ''}",
            "xact_age_s": None if r["xact_age_s"] is None else round(float(r["xact_age_s"]), 3),
            "query": str(r["query"]),
        }
        for r in rows
    ]


def watch_connection(engine: Engine) -> Any:
    """An autocommit connection for polling the server's activity views."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


class Prober:
    """Sends GET `url` every `interval_s` (each bounded by `timeout_s`) until stopped, and
    appends one JSON line per request to `log`: its start time (UTC), ok, status, error."""

    def __init__(
        self, url: str, log: Path, interval_s: float = 0.05, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self.log = log
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-prober", daemon=True)

    def start(self) -> Prober:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 5)

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        with self.log.open("a") as out:
            while not self._stop.is_set():
                line = self.request()
                out.write(json.dumps(line) + "\n")
                out.flush()
                self.sent += 1
                self.failed += 0 if line["ok"] else 1
                self._stop.wait(self.interval_s)

    def request(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        status: int | None = None
        error = ""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                status = int(resp.status)
                resp.read()
        except urllib.error.HTTPError as exc:
            status, error = exc.code, str(exc.reason)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return {
            "ts": started.isoformat(),
            "ok": status == 200,
            "status": status,
            "error": error,
            "took_s": round(time.monotonic() - t0, 4),
        }
