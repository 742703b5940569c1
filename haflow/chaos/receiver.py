"""`python -m haflow.chaos.receiver PORT FILE`: the chaos cluster's webhook receiver.

A node of its own (`receiver`) that answers every POST with 200 and appends what it received
to FILE (a records folder bind-mounted from the host): the idempotency key, the event it
names and when it arrived, one JSON line per delivery, in one write. It counts deliveries,
repeats included; the checker (property P11) judges from these lines, never from haflow's own
account of what it sent.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DELIVERIES_FILE = "deliveries.jsonl"
PORT = 9000


def handler(path: str) -> type[BaseHTTPRequestHandler]:
    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
            line = {
                "key": self.headers.get("Idempotency-Key", ""),
                "event": body.get("event"),
                "dag_id": body.get("dag_id"),
                "run_id": body.get("run_id"),
                "task_id": body.get("task_id"),
                "attempt": body.get("attempt"),
                "revision": detail.get("revision"),
                "event_ts": body.get("ts"),
                "ts": datetime.now(UTC).isoformat(),
            }
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Receive


def main(argv: list[str]) -> int:
    port, path = int(argv[0]), argv[1]
    server = ThreadingHTTPServer(("0.0.0.0", port), handler(path))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
