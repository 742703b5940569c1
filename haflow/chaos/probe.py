"""Observations made from the host while faults happen, recorded for the checker.

- `Prober`: a thread that sends requests through haproxy at a steady pace and appends each
  one's start time and result to the cluster's `requests.jsonl` (the P8 evidence).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Prober:
    """Sends GET `url` every `interval_s` (each bounded by `timeout_s`) until stopped, and
    appends one JSON line per request to `log`: its start time (UTC), ok, status, error. An
    HTTPS `url` is reached with `tls`."""

    def __init__(
        self,
        url: str,
        log: Path,
        interval_s: float = 0.05,
        timeout_s: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
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
            with urllib.request.urlopen(self.url, timeout=self.timeout_s, context=self.tls) as resp:
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
