"""The one typed, frozen settings object that haflow passes down instead of reading config.

Invariant: a `Settings` only ever holds values that passed `schema.coerce`, one attribute per
row of `SCHEMA`; sensitive values are left out of `repr` and masked by `as_dict` by default.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from haflow.config.schema import MIN_SECRET_KEY_BYTES, SCHEMA, SECTIONS, coerce, lookup
from haflow.errors import ConfigError

ExecutorName = Literal["local", "celery"]
ElectionMode = Literal["auto", "zookeeper", "database", "none"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

MASK = "***"


@dataclass(frozen=True)
class CoreSettings:
    """[core]: where DAGs and the metastore are, and how much runs at once."""

    dags_folder: Path
    sql_alchemy_conn: str = field(repr=False)
    executor: ExecutorName
    parallelism: int
    attempts_per_process: int
    fernet_key: str = field(repr=False)
    hostname: str
    dag_dir_list_interval: float
    dag_file_import_timeout: float
    dag_file_memory_limit: int
    dag_parsing_processes: int
    max_dag_code_kb: int
    code_cache: str

    def effective_hostname(self) -> str:
        """The configured hostname, or socket.getfqdn() when it is left empty."""
        return self.hostname or socket.getfqdn()


@dataclass(frozen=True)
class SchedulerSettings:
    """[scheduler]: the scheduling loop and its cluster."""

    cluster: str
    loop_interval: float
    queued_timeout: float
    max_active_tasks: int
    metrics_port: int
    metrics_host: str
    heartbeat_sec: float


@dataclass(frozen=True)
class WorkerSettings:
    """[worker]: task heartbeats, reclamation and self-fencing."""

    heartbeat_sec: float
    timeout: float
    concurrency: int
    self_fence_margin: float
    reclaim_margin: float
    metrics_port: int
    metrics_host: str
    max_log_bytes: int
    max_result_bytes: int
    max_losses: int
    reclaim_consumes_retry: bool
    task_env_allowlist: str
    warm_dag_files: int

    @property
    def task_env(self) -> tuple[str, ...]:
        """`task_env_allowlist` as names or shell-style patterns (blanks or commas between)."""
        return env_patterns(self.task_env_allowlist)

    def __post_init__(self) -> None:
        if self.self_fence_margin >= self.timeout:
            raise ConfigError(
                f"[worker] needs self_fence_margin ({self.self_fence_margin:g}) < timeout "
                f"({self.timeout:g}): a worker stops an attempt it cannot heartbeat after "
                "timeout - self_fence_margin seconds, which must be more than none"
            )

    @property
    def reclaim_margin_s(self) -> float:
        """`reclaim_margin`, at most `self_fence_margin` (so W + margin <= timeout)."""
        return min(self.reclaim_margin, self.self_fence_margin)

    @property
    def self_fence_s(self) -> float:
        """How long a worker runs an attempt it could not heartbeat: its self-fence window."""
        return self.timeout - self.self_fence_margin


@dataclass(frozen=True)
class ElectionSettings:
    """[election]: which backend elects the leading scheduler, and its timings."""

    mode: ElectionMode
    zk_hosts: str
    zk_auth: str = field(repr=False)
    zk_session_timeout: float
    zk_fallback_after: float
    db_lock_timeout: float


@dataclass(frozen=True)
class CelerySettings:
    """[celery]: broker and queues of the Celery executor."""

    broker_url: str = field(repr=False)
    result_backend: str = field(repr=False)
    default_queue: str
    visibility_timeout: float
    publish_timeout: float
    remote_control: Literal["auto", "on", "off"]
    queue_type: Literal["classic", "quorum"]


def env_patterns(text: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[\s,]+", text) if p)


MAKE_SECRET_KEY = "`python -c 'import secrets; print(secrets.token_hex(32))'`"


def secret_key_problem(key: str, min_bytes: int = MIN_SECRET_KEY_BYTES) -> str | None:
    """What is wrong with `key` as a `[webserver] secret_key`, or None: the one wording of the
    webserver's refusal and of `haflow doctor`'s finding."""
    if not key:
        return (
            "[webserver] secret_key is empty: set one shared secret for every webserver of "
            f"the cluster (e.g. {MAKE_SECRET_KEY})"
        )
    if len(key.encode("utf-8")) < min_bytes:
        return (
            f"[webserver] secret_key is shorter than {min_bytes} bytes: anyone who guesses it "
            f"can forge an Admin session; make a long one with {MAKE_SECRET_KEY}"
        )
    return None


@dataclass(frozen=True)
class WebserverSettings:
    """[webserver]: the web app."""

    secret_key: str = field(repr=False)
    port: int
    workers: int
    host: str
    cookie_secure: bool
    login_rate_limit: int
    proxy_count: int
    scheduler_health_threshold: float


@dataclass(frozen=True)
class NotificationSettings:
    """[notifications]: the cluster's own notifiers and how notifications are delivered."""

    webhook_url: str = field(repr=False)
    email_to: str
    events: str
    max_tries: int
    retry_delay: float
    timeout: float
    parallelism: int
    smtp_host: str
    smtp_port: int
    smtp_from: str
    smtp_starttls: bool
    smtp_user: str
    smtp_password: str = field(repr=False)


@dataclass(frozen=True)
class RetentionSettings:
    """[retention]: what the leader prunes on its own, and how."""

    older_than_days: float
    interval: float
    batch_size: int
    tables: str

    @property
    def table_list(self) -> tuple[str, ...]:
        return tuple(t for t in self.tables.replace(",", " ").split() if t)


@dataclass(frozen=True)
class LoggingSettings:
    """[logging]: log verbosity."""

    level: LogLevel


SECTION_CLASSES: dict[str, type[Any]] = {
    "core": CoreSettings,
    "scheduler": SchedulerSettings,
    "worker": WorkerSettings,
    "election": ElectionSettings,
    "celery": CelerySettings,
    "webserver": WebserverSettings,
    "notifications": NotificationSettings,
    "retention": RetentionSettings,
    "logging": LoggingSettings,
}


@dataclass(frozen=True)
class Settings:
    """Every setting of one haflow installation, grouped by section; immutable once loaded."""

    home: Path
    config_file: Path
    core: CoreSettings
    scheduler: SchedulerSettings
    worker: WorkerSettings
    election: ElectionSettings
    celery: CelerySettings
    webserver: WebserverSettings
    notifications: NotificationSettings
    retention: RetentionSettings
    logging: LoggingSettings

    def get(self, section: str, key: str) -> object:
        """The value of `[section] key`; ConfigError if no such setting exists."""
        spec = lookup(section, key, where="Settings.get")
        return getattr(getattr(self, spec.section), spec.key)

    def as_dict(self, mask_secrets: bool = True) -> dict[str, dict[str, object]]:
        """{section: {key: value}}; non-empty sensitive values become "***" when masked."""
        result: dict[str, dict[str, object]] = {name: {} for name in SECTIONS}
        for spec in SCHEMA:
            value = self.get(spec.section, spec.key)
            masked = mask_secrets and spec.sensitive and value != ""
            result[spec.section][spec.key] = MASK if masked else value
        return result

    def with_overrides(self, **overrides: object) -> Settings:
        """A copy with `section__key=value` overrides, each checked like a value from a file.

        Values may be strings (parsed, {HAFLOW_HOME} replaced) or already typed values.
        """
        values = self.as_dict(mask_secrets=False)
        for name, value in overrides.items():
            section, sep, key = name.lower().partition("__")
            if not sep:
                raise ConfigError(f"override {name!r}: expected the form section__key")
            spec = lookup(section, key, where=f"override {name!r}")
            values[section][key] = coerce(spec, value, f"override {name!r}", self.home)
        return build_settings(self.home, self.config_file, values)


def build_settings(
    home: Path, config_file: Path, values: Mapping[str, Mapping[str, object]]
) -> Settings:
    """Assemble a Settings from already coerced values, one mapping per section."""
    sections = {name: cls(**values[name]) for name, cls in SECTION_CLASSES.items()}
    return Settings(home=home, config_file=config_file, **sections)
