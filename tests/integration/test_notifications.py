"""Callbacks and notifiers through the real scheduler, local executor, an HTTP receiver and an
SMTP server, on each metastore; and the outbox's claims across a change of leader.

What is checked is what a receiver counts: every event that calls for a notification is
delivered, each once by key, whoever ends the attempt (its worker or the leader)."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.core.clearing import ClearScope
from haflow.core.clock import utcnow
from haflow.core.notices import notification_key
from haflow.dag.bundle import Bundle, cache_folder, entry_of, unpacked
from haflow.errors import FencedOut
from haflow.metastore import models as m
from haflow.metastore.engine import create_engine
from haflow.metastore.records import DagRecord, NotificationRow
from haflow.metastore.repository import Repository
from haflow.notify.send import DeliveryError, SendConfig, send
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=60.0)
T0 = utcnow()

DAG_FILE = """
import json
from datetime import datetime
from haflow.dag import DAG, BashTask, Email, Webhook

NOTES = {notes!r}

def note(context):
    with open(NOTES, "a") as f:
        f.write(json.dumps(context) + "\\n")

def broken(context):
    raise RuntimeError("this callback broke on " + context["event"])

with DAG("nt", start_date=datetime(2026, 1, 1),
         on_failure_callback=[note, Webhook({url!r} + "/dag")],
         default_args={{"on_failure_callback": Email("ops@example.com")}}):
    a = BashTask("a", bash_command='test "$HAFLOW_ATTEMPT" -ge 2', retries=1, retry_delay=0,
                 on_retry_callback=note)
    b = BashTask("b", bash_command="exit 1")
    c = BashTask("c", bash_command="exit 2", on_failure_callback=[note, broken])
    a >> [b, c]
"""


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        yield http, smtp


def _notes(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _finished(repo: Repository, run_id: str) -> bool:
    return repo.runs.get("nt", run_id).state in ("success", "failed")


def _settled(repo: Repository) -> bool:
    counts = repo.notifications.counts()
    return counts["pending"] == counts["sending"] == 0 and sum(counts.values()) > 0


def test_every_event_notified_once_by_key_through_each_target(
    tmp_path: Path, db_url: str, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    notes = tmp_path / "notes.jsonl"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "nt.py").write_text(DAG_FILE.format(notes=str(notes), url=http.url))
    settings = load_settings(
        home=tmp_path,
        environ={
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
            "HAFLOW__CORE__DAGS_FOLDER": str(dags),
            "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
            "HAFLOW__NOTIFICATIONS__WEBHOOK_URL": http.url + "/cluster",
            "HAFLOW__NOTIFICATIONS__EVENTS": "run.failed, ti.failed",
            "HAFLOW__NOTIFICATIONS__MAX_TRIES": "2",
            "HAFLOW__NOTIFICATIONS__RETRY_DELAY": "0.2",
            "HAFLOW__NOTIFICATIONS__SMTP_HOST": "127.0.0.1",
            "HAFLOW__NOTIFICATIONS__SMTP_PORT": str(smtp.port),
        },
    )
    service = build_scheduler(settings)
    thread = threading.Thread(target=service.run, name="scheduler", daemon=True)
    thread.start()
    repo = service.repo
    try:
        wait_for("DAG nt to be parsed", lambda: "nt" in {d.dag_id for d in repo.dags.all()})
        repo.runs.trigger("nt", {}, utcnow(), run_id="r1")
        wait_for("run r1 to fail", lambda: _finished(repo, "r1"))
        wait_for("every notification to settle", lambda: _settled(repo))

        seen = Counter((n["event"], n["task_id"]) for n in _notes(notes))
        assert seen == {
            ("ti.up_for_retry", "a"): 1,  # a's on_retry_callback, at its first attempt
            ("ti.failed", "c"): 1,  # c's own on_failure_callback (not the default_args')
            ("run.failed", None): 1,  # the DAG's on_failure_callback
        }
        (dag_post,) = http.at("/dag")
        assert dag_post.body["event"] == "run.failed"
        assert dag_post.headers["Idempotency-Key"] == dag_post.body["key"]
        cluster = Counter((p.body["event"], p.body["task_id"]) for p in http.at("/cluster"))
        assert cluster == {("ti.failed", "b"): 1, ("ti.failed", "c"): 1, ("run.failed", None): 1}
        (mail,) = smtp.messages  # b took the DAG's default_args on_failure_callback
        assert mail["Subject"] == "[haflow] task failed: nt.b (r1)"
        assert mail["Message-ID"] == f"<{mail['X-Haflow-Key'][:32]}@haflow>"

        counts = repo.notifications.counts()
        assert counts == {"pending": 0, "sending": 0, "delivered": 8, "failed": 1}
        (gave_up,) = repo.history.events(kinds=["notification.failed"])
        assert gave_up.task_id == "c" and "this callback broke on ti.failed" in gave_up.detail
        assert len(repo.history.events(kinds=["notification.error"])) == 1  # its first try
        keys = [n.key for n in repo.notifications.recent()]
        assert len(keys) == len(set(keys)) == 9

        # a clear runs c again: its failure and the run's are new events, with new keys
        repo.runs.clear("nt", "r1", ["c"], utcnow(), ClearScope())
        wait_for("run r1 to fail again", lambda: _finished(repo, "r1"))
        wait_for("the new notifications to settle", lambda: _settled(repo))
        again = [n for n in _notes(notes) if n["event"] != "ti.up_for_retry"]
        assert Counter((n["event"], n["task_id"], n["attempt"]) for n in again) == {
            ("ti.failed", "c", 1): 1,
            ("ti.failed", "c", 2): 1,
            ("run.failed", None, None): 2,
        }
        assert len({n["key"] for n in again}) == 4
    finally:
        service.stop_requested.set()
        thread.join(30)
    assert not thread.is_alive()


@pytest.fixture
def outbox(db_url: str) -> Iterator[Repository]:
    """A DAG `d` whose failed runs are POSTed to a webhook."""
    repo = Repository(create_engine(db_url), actor="test")
    target = {"type": "webhook", "url": "http://receiver.invalid/x"}
    rules = [{"on": "run.failed", "task": None, "target": target}]
    record = DagRecord("d", "/dags/d.py", None, None, False, 1, [], "", "f", {}, rules)
    repo.dags.sync([record], [], utcnow())
    yield repo
    repo.engine.dispose()


def test_a_claim_moves_to_the_new_leader_and_the_old_outcome_is_refused(
    outbox: Repository,
) -> None:
    repo = outbox
    now = utcnow()
    e1 = repo.leadership.take("s1", "database", now, reason="test")
    repo.record_event("run.failed", now, dag_id="d", run_id="r1", detail={"revision": 0})
    repo.record_event("run.failed", now, dag_id="d", run_id="r1", detail={"revision": 0})
    (first,) = repo.notifications.claim(e1, now, limit=10, lease_s=60)  # one event, one row
    target = {"type": "webhook", "url": "http://receiver.invalid/x"}
    assert first.key == notification_key("run.failed", "d", "r1", None, 0, target)
    assert (first.tries, first.claim_epoch) == (1, e1)
    assert repo.notifications.claim(e1, now, limit=10, lease_s=60) == []  # leased

    e2 = repo.leadership.take("s2", "database", now, reason="test")
    repo.record_event("run.failed", now, dag_id="d", run_id="r2", detail={"revision": 0})
    with pytest.raises(FencedOut):  # something is due: the deposed leader's claim is refused
        repo.notifications.claim(e1, now, limit=10, lease_s=60)
    second, other = repo.notifications.claim(e2, now, limit=10, lease_s=60)  # r1's at once
    assert (second.key, second.tries, second.claim_epoch) == (first.key, 2, e2)
    assert (other.run_id, other.tries) == ("r2", 1)

    settle = functools.partial(repo.notifications.settle, max_tries=3, retry_delay_s=1.0)
    assert settle(first, None, now) is None  # the deposed leader's outcome counts for nothing
    assert settle(second, "HTTP 503", now) == "pending"
    assert repo.notifications.claim(e2, now, limit=10, lease_s=60) == []  # not due yet
    later = now + timedelta(seconds=3)
    (third,) = repo.notifications.claim(e2, later, limit=10, lease_s=60)
    assert settle(third, None, later) == "delivered"
    assert settle(other, None, later) == "delivered"
    assert repo.notifications.claim(e2, later + timedelta(hours=1), limit=10, lease_s=60) == []
    assert repo.notifications.counts()["delivered"] == 2
    kinds = [
        e.kind for e in repo.history.events(kinds=["notification.error", "notification.delivered"])
    ]
    assert sorted(kinds) == ["notification.delivered"] * 2 + ["notification.error"]


def test_a_notification_is_given_up_after_its_tries(outbox: Repository) -> None:
    repo = outbox
    now = utcnow()
    epoch = repo.leadership.take("s1", "database", now, reason="test")
    repo.record_event("run.failed", now, dag_id="d", run_id="r1", detail={"revision": 3})
    states = []
    for i in range(3):
        at = now + timedelta(seconds=10 * i)
        (n,) = repo.notifications.claim(epoch, at, limit=10, lease_s=60)
        states.append(repo.notifications.settle(n, "refused", at, max_tries=3, retry_delay_s=1))
    assert states == ["pending", "pending", "failed"]
    (event,) = repo.history.events(kinds=["notification.failed"])
    assert '"try": 3' in event.detail and "refused" in event.detail


def test_a_run_id_used_again_after_its_run_was_deleted_is_notified_again(
    outbox: Repository,
) -> None:
    repo, now = outbox, utcnow()
    for _ in range(2):
        repo.runs.trigger("d", {}, now, run_id="again")
        repo.record_event("run.failed", now, dag_id="d", run_id="again", detail={"revision": 0})
        with repo.engine.begin() as conn:  # as retention or `dags delete` would
            conn.execute(delete(m.DagRun))
        now += timedelta(seconds=1)
    assert repo.notifications.counts()["pending"] == 2  # two runs, two keys


def test_a_webhook_is_not_redirected_and_its_errors_name_only_its_host(
    receivers: tuple[HttpReceiver, SmtpReceiver],
) -> None:
    http, _ = receivers
    http.status = 302  # a redirect would turn the POST into an empty GET
    target = {"type": "webhook", "url": http.url + "/hook?token=s3cret"}
    row = NotificationRow(
        1, "k", "run.failed", "d", "r", None, None, target, {"x": 1}, "sending", 1, 1, "", T0, None
    )
    with pytest.raises(DeliveryError) as failed:
        send(row, SendConfig(timeout_s=5))
    assert "answered HTTP 302" in str(failed.value) and "s3cret" not in str(failed.value)
    assert len(http.posts) == 1  # the POST, not followed


def test_a_callback_sees_the_task_environment_and_the_dags_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dags = tmp_path / "dags"
    (dags / "team").mkdir(parents=True)
    (dags / "helpers.py").write_text("WHO = 'helper'\n")
    out = tmp_path / "seen.json"
    (dags / "team" / "cb.py").write_text(
        f"""
import json, os
from datetime import datetime
from helpers import WHO
from haflow.dag import DAG, BashTask

def seen(context):
    with open({str(out)!r}, "w") as f:
        json.dump({{"who": WHO, "env": dict(os.environ), "key": context["key"]}}, f)

with DAG("cb", start_date=datetime(2026, 1, 1), on_failure_callback=seen):
    BashTask("t", bash_command="true")
"""
    )
    monkeypatch.setenv("HAFLOW__CORE__SQL_ALCHEMY_CONN", "postgresql://user:secret@db/x")
    target = {
        "type": "callback",
        "file": "/elsewhere/dags/team/cb.py",  # where the leader that parsed it keeps it
        "task": None,
        "hook": "on_failure_callback",
        "index": 0,
        "name": "seen",
    }
    row = NotificationRow(
        1, "k1", "run.failed", "cb", "r", None, None, target, {}, "sending", 1, 1, "", T0, None
    )
    send(row, SendConfig(timeout_s=30, callback_env={}, dags_folder=str(dags)))
    seen = json.loads(out.read_text())
    assert seen["who"] == "helper" and seen["key"] == "k1"
    assert not any(k.startswith("HAFLOW__") for k in seen["env"])


def test_a_callback_runs_its_dags_code_version_not_the_leaders_folder(tmp_path: Path) -> None:
    """A leader whose folder holds another version (stale, or none at all) runs the callback
    of the version the rule names, with that version's helper module."""
    out = tmp_path / "seen.txt"
    source = f"""
from datetime import datetime
from helpers import WHO
from haflow.dag import DAG, BashTask

def seen(context):
    open({str(out)!r}, "w").write(WHO)

with DAG("cb", start_date=datetime(2026, 1, 1), on_failure_callback=seen):
    BashTask("t", bash_command="true")
"""
    stale = tmp_path / "dags"
    stale.mkdir()
    (stale / "cb.py").write_text(source)
    (stale / "helpers.py").write_text("WHO = 'the stale folder'\n")
    b = Bundle("cb.py", (("cb.py", source.encode()), ("helpers.py", b"WHO = 'the version'\n")))
    base = cache_folder(tmp_path / "cache")
    target = {
        "type": "callback",
        "file": str(stale / "cb.py"),
        "task": None,
        "hook": "on_failure_callback",
        "index": 0,
        "name": "seen",
        "code_hash": b.hash,
    }
    row = NotificationRow(
        1, "k", "run.failed", "cb", "r", None, None, target, {}, "sending", 1, 1, "", T0, None
    )

    def code(h: str) -> tuple[str, str]:
        folder = unpacked(base, h, lambda _: b.pack())
        return entry_of(folder), str(folder)

    send(row, SendConfig(timeout_s=30, dags_folder=str(stale), code=code))
    assert out.read_text() == "the version"


def test_a_callback_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    marker = tmp_path / "child.pid"
    (dags / "hang.py").write_text(
        f"""
import os, time
from datetime import datetime
from haflow.dag import DAG, BashTask

def hang(context):
    open({str(marker)!r}, "w").write(str(os.getpid()))
    time.sleep(600)

with DAG("hang", start_date=datetime(2026, 1, 1), on_failure_callback=hang):
    BashTask("t", bash_command="true")
"""
    )
    target = {
        "type": "callback",
        "file": str(dags / "hang.py"),
        "task": None,
        "hook": "on_failure_callback",
        "index": 0,
        "name": "hang",
    }
    row = NotificationRow(
        1, "k", "run.failed", "hang", "r", None, None, target, {}, "sending", 1, 1, "", T0, None
    )
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="ran past the 2 s timeout and was killed"):
        send(row, SendConfig(timeout_s=2, dags_folder=str(dags)))
    assert time.monotonic() - started < 10
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):  # killed with its process group, and reaped
        os.kill(pid, 0)
