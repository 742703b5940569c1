"""One delivery of one notification to its target; raises DeliveryError saying why it failed.

- webhook: POST of the notification's JSON payload, `Idempotency-Key: <key>`; any 2xx answer
  is a delivery, anything else (or no answer within the timeout) a failed try.
- email: through `[notifications] smtp_*`; `Message-ID` from the key and `X-Haflow-Key: <key>`.
- callback: a new interpreter (`python -m haflow.notify.callback`) imports the DAG file and
  calls the function with the event's context; it gets the task environment (never the
  scheduler's secrets), is killed with its process group at the timeout, and a raise or a
  non-zero exit is a failed try whose error is the end of its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from haflow.core.notices import host_of
from haflow.errors import HaflowError
from haflow.metastore.records import NotificationRow

_TAIL = 2000  # characters of a failing callback's output kept as its error


class DeliveryError(HaflowError):
    """A try to deliver a notification failed; the message says why."""


@dataclass(frozen=True)
class SendConfig:
    timeout_s: float = 30.0
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_from: str = "haflow@localhost"
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    callback_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    dags_folder: str = ""
    python: str = sys.executable
    code: Callable[[str], tuple[str, str]] | None = field(default=None, repr=False)
    """A code version's DAG file and unpacked folder, by hash (`haflow.dag.bundle`)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into an empty GET that answers 2xx: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(n: NotificationRow, cfg: SendConfig) -> None:
    """Deliver `n` once; DeliveryError when this try failed."""
    kind = n.target.get("type")
    if kind == "webhook":
        post_webhook(n, cfg)
    elif kind == "email":
        send_email(n, cfg)
    elif kind == "callback":
        call_back(n, cfg)
    else:
        raise DeliveryError(f"unknown notification target {n.target!r}")


def post_webhook(n: NotificationRow, cfg: SendConfig) -> None:
    body = json.dumps(n.payload).encode("utf-8")
    request = urllib.request.Request(
        n.target["url"],
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": n.key,
            "X-Haflow-Event": n.event,
            "User-Agent": "haflow-notifier",
        },
    )
    host = host_of(n.target["url"])
    try:
        with _OPENER.open(request, timeout=cfg.timeout_s) as resp:
            resp.read(1 << 16)
    except urllib.error.HTTPError as exc:  # a 3xx too: redirects are not followed
        text = exc.read(500).decode("utf-8", "replace")
        raise DeliveryError(f"webhook to {host} answered HTTP {exc.code}: {text}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook to {host} unreachable: {reason}") from exc


def subject(n: NotificationRow) -> str:
    what = {
        "run.failed": "run failed",
        "run.success": "run succeeded",
        "ti.failed": "task failed",
        "ti.success": "task succeeded",
        "ti.up_for_retry": "task up for retry",
    }.get(n.event, n.event)
    task = f".{n.task_id}" if n.task_id else ""
    return f"[haflow] {what}: {n.dag_id}{task} ({n.run_id})"


def send_email(n: NotificationRow, cfg: SendConfig) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject(n)
    msg["From"] = cfg.smtp_from
    msg["To"] = ", ".join(n.target["to"])
    msg["Message-ID"] = f"<{n.key[:32]}@haflow>"  # short enough not to be folded
    msg["X-Haflow-Key"] = n.key
    msg.set_content(subject(n) + "\n\n" + json.dumps(n.payload, indent=2) + "\n")
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
            if cfg.smtp_starttls:  # the server's certificate verified, as a mail client would
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, cfg.smtp_password)
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"e-mail through {cfg.smtp_host}:{cfg.smtp_port} failed: {exc}"
        ) from exc


def callback_context(n: NotificationRow) -> dict[str, Any]:
    """What a callback function is called with (documented in docs/operations.md)."""
    detail = n.payload.get("detail") or {}
    return {
        **n.payload,
        "key": n.key,
        "event": n.event,
        "dag_id": n.dag_id,
        "run_id": n.run_id,
        "task_id": n.task_id,
        "attempt": n.attempt,
        "state": n.event.split(".", 1)[1],
        "reason": detail.get("reason", "") if isinstance(detail, dict) else "",
        "try": n.tries,
    }


def call_back(n: NotificationRow, cfg: SendConfig) -> None:
    t = n.target
    file, folder, first, as_path = t["file"], cfg.dags_folder, False, None
    if t.get("code_hash") and cfg.code is not None:  # its DAG's version, not the folder
        try:
            file, folder = cfg.code(t["code_hash"])
        except (HaflowError, OSError) as exc:
            raise DeliveryError(f"callback {t['name']}: its code version: {exc}") from exc
        first, as_path = True, t["file"]  # run as the file it was parsed from
    request = {
        "as_path": as_path,
        "file": file,
        "dags_folder": folder,
        "first": first,
        "dag_id": n.dag_id,
        "task": t["task"],
        "hook": t["hook"],
        "index": t["index"],
        "context": callback_context(n),
    }
    with subprocess.Popen(  # closes its pipes and reaps it on the way out
        [cfg.python, "-m", "haflow.notify.callback"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(cfg.callback_env),  # only what the task environment allows, maybe nothing
        cwd=cfg.dags_folder or None,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(json.dumps(request).encode("utf-8"), timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()  # what it wrote until then; its pipes end with it
            raise DeliveryError(
                f"callback {t['name']} ran past the {cfg.timeout_s:g} s timeout and was killed"
            ) from None
        finally:
            _kill_group(proc)  # whatever it left behind in its session
    if proc.returncode != 0:
        tail = out.decode("utf-8", "replace")[-_TAIL:].strip()
        raise DeliveryError(f"callback {t['name']} failed (exit {proc.returncode}): {tail}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        proc.wait()
