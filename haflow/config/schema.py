"""The declarative table of every haflow setting, and how one raw value becomes a typed one.

Invariant: every setting haflow reads is a row of `SCHEMA`; defaults are written the way they
would be spelled in haflow.cfg, so they go through the same parsing and checks as user values.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from haflow.errors import ConfigError

ValueType = Literal["str", "int", "float", "bool", "path", "choice"]

HOME_PLACEHOLDER = "{HAFLOW_HOME}"
"""Stands for the haflow home folder in values and defaults."""

SECRET_SUFFIXES = ("_cmd", "_secret")
"""Key suffixes that fetch a sensitive value from a command's output or a file's content."""

MIN_SECRET_KEY_BYTES = 32
"""The shortest `[webserver] secret_key` a webserver accepts (`haflow standalone` excepted)."""

DEFAULT_TASK_ENV = (
    "PATH HOME USER LOGNAME SHELL TERM LANG LANGUAGE LC_* TZ TMPDIR TEMP TMP PYTHONPATH VIRTUAL_ENV"
)
"""The worker's environment variables a task sees by default (`[worker] task_env_allowlist`)."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_TYPE_NAMES = {"int": "an int", "float": "a float", "bool": "a bool", "path": "a path"}


@dataclass(frozen=True)
class SettingSpec:
    """One setting: where it lives, its type, default (cfg-file spelling), bounds and meaning.

    `minimum`/`maximum` are inclusive; `positive` requires a value strictly above zero.
    Only `sensitive` settings may be given through `<key>_cmd` or `<key>_secret`.
    """

    section: str
    key: str
    type: ValueType
    default: str
    description: str
    choices: tuple[str, ...] = ()
    sensitive: bool = False
    positive: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def name(self) -> str:
        return f"[{self.section}] {self.key}"


# fmt: off
SCHEMA: tuple[SettingSpec, ...] = (
    SettingSpec("core", "dags_folder", "path", "{HAFLOW_HOME}/dags",
                "Folder scanned for DAG files."),
    SettingSpec("core", "sql_alchemy_conn", "str", "sqlite:///{HAFLOW_HOME}/haflow.db",
                "SQLAlchemy URL of the metastore database.", sensitive=True),
    SettingSpec("core", "executor", "choice", "local", "Where task instances run.",
                choices=("local", "celery")),
    SettingSpec("core", "parallelism", "int", "8",
                "Attempts the local executor runs at once.", minimum=1),
    SettingSpec("core", "attempts_per_process", "int", "8",
                "Attempts one worker process runs at once (the local executor's and a Celery "
                "worker's), each from a thread of its own; the threads of a process share its "
                "transactions (claims, heartbeats and reports of many attempts in one). "
                "parallelism (or a worker's concurrency) / this many processes are started. A "
                "task that kills its worker process takes down the other attempts of that "
                "process: they are reclaimed.",
                minimum=1),
    SettingSpec("core", "fernet_key", "str", "",
                "Fernet key(s) encrypting the variables and connections kept in the metastore, "
                "comma-separated: the first encrypts, every one decrypts (to rotate: new key "
                "first, then `haflow rotate-fernet-key`, then drop the old). The same on every "
                "node; a node that cannot decrypt what is stored does not start.",
                sensitive=True),
    SettingSpec("core", "hostname", "str", "",
                "Name this process reports for itself; empty means socket.getfqdn()."),
    SettingSpec("core", "dag_dir_list_interval", "float", "10.0",
                "Seconds between scans of the DAGs folder.", positive=True),
    SettingSpec("core", "dag_file_import_timeout", "float", "30.0",
                "Seconds one DAG file may take to import before its parse is killed and "
                "recorded as an import error.", positive=True),
    SettingSpec("core", "dag_file_memory_limit", "int", "2048",
                "Megabytes of address space a DAG file's parse process may use; 0 means no "
                "limit.", minimum=0),
    SettingSpec("core", "dag_parsing_processes", "int", "2",
                "DAG files the scheduler parses at once, each in a child process of its own.",
                minimum=1),
    SettingSpec("core", "max_dag_code_kb", "int", "4096",
                "Largest code version of a DAG file, in KB: the file and the helper modules it "
                "imports from the DAGs folder, which the metastore keeps and workers run. A "
                "larger one is an import error.", minimum=1, maximum=256 * 1024),
    SettingSpec("core", "code_cache", "str", "",
                "Folder where workers and schedulers unpack the DAG code versions they run "
                "or plan (one subfolder per version); empty means haflow-code-<uid> in the "
                "temporary folder. It must belong to the daemon's user and be writable by no "
                "one else."),
    SettingSpec("scheduler", "cluster", "str", "default",
                "Name of the scheduler cluster; schedulers sharing it elect one leader."),
    SettingSpec("scheduler", "loop_interval", "float", "0.2",
                "Seconds the scheduler waits between two ticks of its loop.", positive=True),
    SettingSpec("scheduler", "queued_timeout", "float", "30.0",
                "Seconds a task instance may stay queued before it is sent again.", positive=True),
    SettingSpec("scheduler", "max_active_tasks", "int", "1024",
                "Most task attempts queued or running at once in the cluster.", minimum=1),
    SettingSpec("scheduler", "metrics_port", "int", "0",
                "Port of the metrics endpoint; 0 turns it off.", minimum=0, maximum=65535),
    SettingSpec("scheduler", "metrics_host", "str", "0.0.0.0",
                "Address the metrics endpoint listens on: the cluster's internal interface "
                "(it needs no login; keep it off public networks)."),
    SettingSpec("scheduler", "heartbeat_sec", "float", "1.0",
                "Seconds between two heartbeats of a scheduler.", positive=True),
    SettingSpec("worker", "heartbeat_sec", "float", "1.0",
                "Seconds between two heartbeats of a running task.", positive=True),
    SettingSpec("worker", "timeout", "float", "8.0",
                "Seconds without a heartbeat (on the metastore's clock) after which a task "
                "instance is reclaimed.",
                positive=True),
    SettingSpec("worker", "concurrency", "int", "8", "Task instances one worker runs at once.",
                minimum=1),
    SettingSpec("worker", "self_fence_margin", "float", "2.0",
                "Seconds before the timeout when a worker that cannot heartbeat kills its task "
                "(its self-fence point: timeout - self_fence_margin).", positive=True),
    SettingSpec("worker", "reclaim_margin", "float", "1.0",
                "Seconds past a worker's self-fence point after which the leader reclaims its "
                "attempt once its ZooKeeper node has vanished (a larger value than "
                "self_fence_margin counts as self_fence_margin).",
                positive=True),
    SettingSpec("worker", "metrics_port", "int", "0",
                "Port of the worker's metrics endpoint; 0 turns it off.", minimum=0, maximum=65535),
    SettingSpec("worker", "metrics_host", "str", "0.0.0.0",
                "Address the worker's metrics endpoint listens on: the cluster's internal "
                "interface (it needs no login; keep it off public networks)."),
    SettingSpec("worker", "max_log_bytes", "int", "1048576",
                "Most bytes of log kept for one try of a task.", minimum=1),
    SettingSpec("worker", "max_result_bytes", "int", "65536",
                "Largest result (a Python task's return value or a bash task's "
                "$HAFLOW_RESULT_FILE, as JSON) a try may pass on; a larger one fails the try. "
                "Results live in the metastore: pass large data through storage instead.",
                minimum=1, maximum=16 * 1024 * 1024 - 1),
    SettingSpec("worker", "max_losses", "int", "3",
                "A task instance whose attempts were lost (worker died) this many times fails: "
                "the cap on a task that keeps killing its worker.", minimum=1),
    SettingSpec("worker", "reclaim_consumes_retry", "bool", "false",
                "Whether reclaiming a task from a lost worker uses up one of its retries."),
    SettingSpec("worker", "task_env_allowlist", "str", DEFAULT_TASK_ENV,
                "The worker's environment variables a task sees (names or shell-style patterns, "
                "separated by blanks or commas); HAFLOW__* settings never pass."),
    SettingSpec("worker", "warm_dag_files", "int", "4",
                "DAG files each worker process keeps imported in a warm process that forks "
                "their tasks' attempts, so an attempt does not import its file again; 0 imports "
                "the file in every attempt.", minimum=0),
    SettingSpec("election", "mode", "choice", "auto",
                "Leader election backend; auto prefers ZooKeeper and falls back to the database.",
                choices=("auto", "zookeeper", "database", "none")),
    SettingSpec("election", "zk_hosts", "str", "",
                "ZooKeeper connection string host:port,...[/chroot]; empty means no ZooKeeper."),
    SettingSpec("election", "zk_auth", "str", "",
                "ZooKeeper digest credentials user:password; the election nodes get a digest ACL.",
                sensitive=True),
    SettingSpec("election", "zk_session_timeout", "float", "6.0",
                "Seconds of ZooKeeper session timeout.", positive=True),
    SettingSpec("election", "zk_fallback_after", "float", "6.0",
                "Seconds ZooKeeper may be unreachable before auto mode uses the database.",
                minimum=0),
    SettingSpec("election", "db_lock_timeout", "float", "4.0",
                "Seconds after which the database drops the lock of a silent leader.",
                positive=True),
    SettingSpec("celery", "broker_url", "str", "", "URL of the Celery broker.", sensitive=True),
    SettingSpec("celery", "result_backend", "str", "", "URL of the Celery result backend.",
                sensitive=True),
    SettingSpec("celery", "default_queue", "str", "default",
                "Celery queue for task instances that name no queue."),
    SettingSpec("celery", "visibility_timeout", "float", "21600",
                "Redis broker: seconds before an unacknowledged message is delivered again; "
                "keep it above the longest execution_timeout.", positive=True),
    SettingSpec("celery", "publish_timeout", "float", "10",
                "Seconds a publish (with broker confirmation) may take before it counts as "
                "failed; the attempt is then published again later.", positive=True),
    SettingSpec("celery", "remote_control", "choice", "auto",
                "Whether workers answer Celery's remote control commands (inspect, shutdown) "
                "sent over the broker, which anyone who can publish to it may send. auto: off "
                "with RabbitMQ; on with Redis, whose workers stop consuming after a broker "
                "restart without it (kombu's Redis transport; measured).",
                choices=("auto", "on", "off")),
    SettingSpec("celery", "queue_type", "choice", "classic",
                "RabbitMQ: the type of the queues haflow declares. quorum: replicated on a "
                "cluster's nodes (Raft), a message survives the loss of a minority of them; "
                "an existing queue keeps its type (delete it, drained, to change).",
                choices=("classic", "quorum")),
    SettingSpec("webserver", "secret_key", "str", "", "Key signing web session cookies.",
                sensitive=True),
    SettingSpec("webserver", "port", "int", "8080", "TCP port of the web server.",
                minimum=1, maximum=65535),
    SettingSpec("webserver", "workers", "int", "4", "Number of web server worker processes.",
                minimum=1),
    SettingSpec("webserver", "host", "str", "0.0.0.0",
                "Address the web server listens on."),
    SettingSpec("webserver", "cookie_secure", "bool", "false",
                "Send the session cookie over HTTPS only; turn on when TLS ends before haflow."),
    SettingSpec("webserver", "login_rate_limit", "int", "10",
                "Failed logins allowed per client address and minute, across all webservers.",
                minimum=1),
    SettingSpec("webserver", "proxy_count", "int", "0",
                "Reverse proxies (haproxy) in front of the web server whose X-Forwarded-For "
                "header is trusted for the client address.", minimum=0),
    SettingSpec("webserver", "scheduler_health_threshold", "float", "10.0",
                "Seconds after which /health counts the leader's heartbeat as stale.",
                positive=True),
    SettingSpec("notifications", "webhook_url", "str", "",
                "A URL every DAG's `events` are POSTed to as JSON (with an Idempotency-Key "
                "header), besides the DAGs' own callbacks; empty: none.", sensitive=True),
    SettingSpec("notifications", "email_to", "str", "",
                "Addresses (separated by commas) every DAG's `events` are mailed to; empty: "
                "none."),
    SettingSpec("notifications", "events", "str", "run.failed",
                "Which events webhook_url and email_to hear of, separated by commas: "
                "run.failed, run.success, ti.failed, ti.up_for_retry, ti.success."),
    SettingSpec("notifications", "max_tries", "int", "5",
                "Tries to deliver one notification before it is given up (an event "
                "notification.failed and a metric say so).", minimum=1),
    SettingSpec("notifications", "retry_delay", "float", "10.0",
                "Seconds before the second try of a notification; doubled at every try.",
                positive=True),
    SettingSpec("notifications", "timeout", "float", "30.0",
                "Seconds one delivery may take (a webhook's answer, an e-mail, a callback) "
                "before it is a failed try (a callback is killed).", positive=True),
    SettingSpec("notifications", "parallelism", "int", "4",
                "Notifications the leader delivers at once.", minimum=1),
    SettingSpec("notifications", "smtp_host", "str", "localhost", "SMTP server for e-mail."),
    SettingSpec("notifications", "smtp_port", "int", "25", "Port of the SMTP server.",
                minimum=1, maximum=65535),
    SettingSpec("notifications", "smtp_from", "str", "haflow@localhost",
                "Sender address of notification e-mails."),
    SettingSpec("notifications", "smtp_starttls", "bool", "false",
                "Upgrade the SMTP connection with STARTTLS before sending."),
    SettingSpec("notifications", "smtp_user", "str", "",
                "SMTP login; empty: no login."),
    SettingSpec("notifications", "smtp_password", "str", "", "SMTP password.", sensitive=True),
    SettingSpec("retention", "older_than_days", "float", "0",
                "The leader deletes, on its own, what is older than this many days: runs that "
                "ended (with their task instances, attempts and logs), events, notifications "
                "settled, login failures, expired web sessions (`haflow db clean` does it by "
                "hand); 0 keeps everything.", minimum=0),
    SettingSpec("retention", "interval", "float", "3600",
                "Seconds between the leader's retention passes.", positive=True),
    SettingSpec("retention", "batch_size", "int", "1000",
                "Rows deleted per transaction (a tenth of it for runs, which carry their task "
                "instances and logs).", minimum=1),
    SettingSpec("retention", "tables", "str",
                "runs, versions, events, notifications, logins, sessions",
                "What the leader's retention prunes (a subset of those six; versions: DAG "
                "code versions no DAG has now and no run left uses)."),
    SettingSpec("logging", "level", "choice", "INFO", "Lowest level of log records emitted.",
                choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)
# fmt: on

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(spec.section for spec in SCHEMA))
_BY_NAME: dict[tuple[str, str], SettingSpec] = {(s.section, s.key): s for s in SCHEMA}


def section_specs(section: str) -> tuple[SettingSpec, ...]:
    """The settings of one section, in table order."""
    return tuple(spec for spec in SCHEMA if spec.section == section)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def check_section(section: str, where: str) -> None:
    """Raise ConfigError naming `where` unless `section` is a known section."""
    if section not in SECTIONS:
        hint = _did_you_mean(section, SECTIONS)
        raise ConfigError(
            f"{where}: unknown section [{section}]{hint}; known sections: {', '.join(SECTIONS)}"
        )


def lookup(section: str, key: str, where: str) -> SettingSpec:
    """The spec of `[section] key`, or ConfigError naming `where`, the known keys and a guess."""
    check_section(section, where)
    spec = _BY_NAME.get((section, key))
    if spec is None:
        keys = [s.key for s in section_specs(section)]
        raise ConfigError(
            f"{where}: unknown key '{key}' in [{section}]{_did_you_mean(key, keys)}; "
            f"known keys: {', '.join(keys)}"
        )
    return spec


def split_key(section: str, key: str, where: str) -> tuple[SettingSpec, str]:
    """Resolve `key` (maybe ending in _cmd/_secret) to its spec and suffix ("" if none).

    Raises ConfigError for unknown keys and for a suffix on a non-sensitive setting.
    """
    check_section(section, where)
    for suffix in SECRET_SUFFIXES:
        base = key.removesuffix(suffix)
        if key.endswith(suffix) and (section, base) in _BY_NAME:
            spec = _BY_NAME[(section, base)]
            if not spec.sensitive:
                allowed = ", ".join(s.name for s in SCHEMA if s.sensitive)
                raise ConfigError(
                    f"{where}: {spec.name} is not sensitive, so '{key}' is not allowed; "
                    f"only these settings accept _cmd and _secret: {allowed}"
                )
            return spec, suffix
    return lookup(section, key, where), ""


def substitute_home(text: str, home: Path) -> str:
    """Replace every {HAFLOW_HOME} in `text` with the home folder."""
    return text.replace(HOME_PLACEHOLDER, str(home))


def coerce(spec: SettingSpec, value: object, origin: str, home: Path) -> object:
    """Turn a raw string (or an already typed value) into the checked value of `spec`.

    Strings have {HAFLOW_HOME} replaced first. Raises ConfigError naming the setting, the
    value (masked when sensitive), what is allowed and `origin`.
    """
    if isinstance(value, str):
        value = substitute_home(value, home)
    try:
        result = _convert(spec, value)
        problem = _range_problem(spec, result)
    except ValueError as exc:
        problem = str(exc)
    if problem is None:
        return result
    shown = "'***'" if spec.sensitive else repr(value)
    raise ConfigError(f"{spec.name} = {shown} {problem} (from {origin})")


def _convert(spec: SettingSpec, value: object) -> object:
    """Convert to the Python type of `spec`; ValueError carries the problem phrase."""
    if spec.type in ("str", "choice"):
        if not isinstance(value, str):
            raise ValueError("is not a string")
        return _choice(spec, value) if spec.type == "choice" else value
    if spec.type == "path":
        return _path(value)
    if isinstance(value, str):
        return _parse_text(spec.type, value.strip())
    return _check_typed(spec.type, value)


def _check_typed(type_: str, value: object) -> object:
    """Accept an already typed bool/int/float; a bool is never taken for a number."""
    if isinstance(value, bool):
        if type_ == "bool":
            return value
    elif type_ == "int" and isinstance(value, int):
        return value
    elif type_ == "float" and isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise ValueError(f"is not {_TYPE_NAMES[type_]}")


def _parse_text(type_: str, text: str) -> object:
    problem = f"is not {_TYPE_NAMES[type_]}"
    if type_ == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{problem} (use true/false, 1/0, yes/no or on/off)")
    try:
        number = int(text) if type_ == "int" else float(text)
    except ValueError:
        raise ValueError(problem) from None
    if not math.isfinite(number):
        raise ValueError(f"{problem} (it must be finite)")
    return number


def _choice(spec: SettingSpec, value: str) -> str:
    for choice in spec.choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise ValueError(f"is not one of the allowed values: {', '.join(spec.choices)}")


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a path")
    if not value.strip():
        raise ValueError("is empty, but a path is required")
    return Path(value.strip()).expanduser()


def _range_problem(spec: SettingSpec, value: object) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if spec.positive and value <= 0:
        return "must be positive (> 0)"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be >= {spec.minimum:g}"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be <= {spec.maximum:g}"
    return None
