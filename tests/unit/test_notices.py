"""Which events notify whom: a DAG's callbacks and notifiers as rules, the cluster's own, the
notification key, and the dispatcher following the scheduler's leadership (with a fake
outbox; the real one is in tests/integration/test_notifications.py)."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from haflow.config import load_settings
from haflow.core.notices import matching, notification_key
from haflow.dag import DAG, BashTask, Email, Webhook
from haflow.errors import ConfigError, DagDefinitionError, FencedOut
from haflow.metastore.records import NotificationRow
from haflow.notify.cluster import cluster_rules
from haflow.notify.send import DeliveryError
from haflow.scheduler.notifications import DispatchConfig, NotificationDispatcher
from tests.waiting import wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def alert(context: dict[str, Any]) -> None:
    print(context)


def test_hooks_become_rules_and_tasks_fall_back_on_default_args() -> None:
    hook = Webhook("https://hooks.example.com/x")
    with DAG(
        "d",
        on_failure_callback=[alert, hook],
        default_args={"on_failure_callback": Email("ops@example.com")},
        fileloc="/dags/d.py",
    ) as dag:
        BashTask("a", bash_command="true", on_retry_callback=alert)
        BashTask("b", bash_command="true", on_failure_callback=[])
    rules = {(r["on"], r["task"], r["target"]["type"]) for r in dag.notify_rules()}
    assert rules == {
        ("run.failed", None, "callback"),
        ("run.failed", None, "webhook"),
        ("ti.failed", "a", "email"),  # default_args
        ("ti.up_for_retry", "a", "callback"),
    }  # b gave an empty list: no default for it
    callback = next(r["target"] for r in dag.notify_rules() if r["task"] is None)
    assert callback == {
        "type": "callback",
        "file": "/dags/d.py",
        "task": None,
        "hook": "on_failure_callback",
        "index": 0,
        "name": "alert",
    }
    assert dag.callback(None, "on_failure_callback", 0) is alert
    assert dag.callback("a", "on_retry_callback", 0) is alert
    with pytest.raises(DagDefinitionError, match="no callable on_failure_callback\\[1\\]"):
        dag.callback(None, "on_failure_callback", 1)  # the Webhook is not a callable


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Webhook("ftp://x/y"), "http\\(s\\) URL"),
        (lambda: Email("nobody"), "e-mail addresses"),
        (lambda: DAG("d", on_success_callback="print"), "must be a function, a Webhook"),
    ],
)
def test_bad_notifiers_are_refused_with_the_reason(make: Any, message: str) -> None:
    with pytest.raises(DagDefinitionError, match=message):
        make()


def test_matching_takes_the_task_or_any_task_once_per_target() -> None:
    hook = {"type": "webhook", "url": "http://h/x"}
    rules: list[dict[str, Any]] = [
        {"on": "ti.failed", "task": "a", "target": hook},
        {"on": "ti.failed", "task": None, "target": hook},
        {"on": "ti.failed", "task": "b", "target": {"type": "email", "to": ["o@x"]}},
        {"on": "run.failed", "task": None, "target": hook},
    ]
    assert matching(rules, "ti.failed", "a") == [hook]
    assert len(matching(rules, "ti.failed", "b")) == 2
    assert matching(rules, "ti.success", "a") == []


def test_a_key_names_the_event_its_generation_and_the_target() -> None:
    hook = {"type": "webhook", "url": "http://h/x"}
    key = notification_key("run.failed", "d", "r1", None, 0, hook)
    assert key == notification_key("run.failed", "d", "r1", None, 0, dict(hook))
    assert key != notification_key("run.failed", "d", "r1", None, 1, hook)  # cleared, failed again
    assert key != notification_key("run.failed", "d", "r1", None, 0, {**hook, "url": "http://o"})
    assert len(key) == 64


def test_the_cluster_notifiers_apply_to_every_dag(tmp_path: Any) -> None:
    settings = load_settings(
        home=tmp_path,
        environ={
            "HAFLOW__NOTIFICATIONS__WEBHOOK_URL": "https://hooks.example.com/t",
            "HAFLOW__NOTIFICATIONS__EMAIL_TO": "a@x, b@x",
            "HAFLOW__NOTIFICATIONS__EVENTS": "run.failed,ti.failed",
        },
    )
    rules = cluster_rules(settings.notifications)
    assert {(r["on"], r["target"]["type"]) for r in rules} == {
        ("run.failed", "webhook"),
        ("run.failed", "email"),
        ("ti.failed", "webhook"),
        ("ti.failed", "email"),
    }
    assert all(r["task"] is None for r in rules)
    with pytest.raises(ConfigError, match=re.escape("unknown ['run.done']")):
        cluster_rules(replace(settings.notifications, events="run.done"))
    with pytest.raises(ConfigError, match="\\[notifications\\] Webhook: url"):
        cluster_rules(replace(settings.notifications, webhook_url="hooks"))
    assert cluster_rules(replace(settings.notifications, webhook_url="", email_to="")) == []


class FakeOutbox:
    """Claims hand out `due` once per epoch that leads; settles are recorded."""

    def __init__(self, due: list[NotificationRow]) -> None:
        self.due = list(due)
        self.leader: int | None = None
        self.settled: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def claim(self, epoch: int, now: datetime, *, limit: int, lease_s: float) -> list[Any]:
        with self.lock:
            if not self.due:
                return []
            if epoch != self.leader:
                raise FencedOut("moved on")
            out, self.due = self.due[:limit], self.due[limit:]
            return [replace(n, tries=n.tries + 1, claim_epoch=epoch) for n in out]

    def settle(self, n: NotificationRow, error: str | None, now: datetime, **_: Any) -> str:
        with self.lock:
            self.settled.append((n.key, error))
        return "delivered" if error is None else "pending"


class FakeRepo:
    def __init__(self, outbox: FakeOutbox) -> None:
        self.notifications = outbox


def _row(key: str) -> NotificationRow:
    target = {"type": "webhook", "url": "http://h/x"}
    return NotificationRow(
        0, key, "run.failed", "d", "r", None, None, target, {}, "pending", 0, None, "", T0, None
    )


def test_the_dispatcher_delivers_while_its_epoch_leads_and_stops_when_fenced() -> None:
    outbox = FakeOutbox([_row("k1"), _row("k2"), _row("k3")])
    sent: list[str] = []

    def send(n: NotificationRow) -> None:
        sent.append(n.key)
        if n.key == "k2":
            raise DeliveryError("HTTP 503")

    outcomes: list[str] = []
    d = NotificationDispatcher(
        FakeRepo(outbox),  # type: ignore[arg-type]
        send,
        DispatchConfig(parallelism=2, poll_s=0.02),
        clock=lambda: T0,
        settled=outcomes.append,
    )
    d.start()
    try:
        assert d.healthy()
        outbox.leader = 7
        d.elected(7, "zookeeper", T0)
        wait_for("three outcomes", lambda: len(outbox.settled) == 3, timeout=5)
        assert sorted(outbox.settled) == [("k1", None), ("k2", "HTTP 503"), ("k3", None)]
        assert sorted(outcomes) == ["delivered", "delivered", "pending"]

        outbox.due = [_row("k4")]
        outbox.leader = 8  # another scheduler leads now: the claim is fenced out
        wait_for("the dispatcher to stand down", lambda: d.epoch is None, timeout=5)
        assert "k4" not in sent
        d.elected(8, "zookeeper", T0)  # (this scheduler leads again, under the new epoch)
        wait_for("k4 to be delivered", lambda: ("k4", None) in outbox.settled, timeout=5)
        d.stepped_down(8, "elector")
        assert d.epoch is None
    finally:
        d.stop()
