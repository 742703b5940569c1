"""The cluster's own notifiers (`[notifications] webhook_url`, `email_to` for `events`) as
rules added to every DAG's, and the delivery settings, from the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from haflow.config.settings import NotificationSettings
from haflow.core.notices import NOTIFIABLE, Rule
from haflow.dag.notifiers import Email, Webhook
from haflow.errors import ConfigError, DagDefinitionError
from haflow.notify.send import SendConfig


def cluster_rules(n: NotificationSettings) -> list[Rule]:
    """Every rule `[notifications]` sets; ConfigError naming the setting at a bad value."""
    events = [e.strip() for e in n.events.split(",") if e.strip()]
    unknown = [e for e in events if e not in NOTIFIABLE]
    if unknown:
        raise ConfigError(
            f"[notifications] events: unknown {unknown}; choose from {sorted(NOTIFIABLE)}"
        )
    targets = []
    try:
        if n.webhook_url:
            targets.append(Webhook(n.webhook_url).target())
        to = tuple(a.strip() for a in n.email_to.split(",") if a.strip())
        if to:
            targets.append(Email(to).target())
    except DagDefinitionError as exc:
        raise ConfigError(f"[notifications] {exc}") from None
    return [{"on": e, "task": None, "target": t} for e in events for t in targets]


def send_config(
    n: NotificationSettings,
    callback_env: Mapping[str, str],
    dags_folder: str = "",
    code: Callable[[str], tuple[str, str]] | None = None,
) -> SendConfig:
    return SendConfig(
        dags_folder=dags_folder,
        code=code,
        timeout_s=n.timeout,
        smtp_host=n.smtp_host,
        smtp_port=n.smtp_port,
        smtp_from=n.smtp_from,
        smtp_starttls=n.smtp_starttls,
        smtp_user=n.smtp_user,
        smtp_password=n.smtp_password,
        callback_env=dict(callback_env),
    )
