"""Tables of the metastore. Schema changes go through an Alembic migration in `migrations/`.

Invariants the schema itself enforces: one run per (dag, run_id) and per scheduled fire time,
one task instance per (run, task), one attempt row per (task instance, attempt number).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGBLOB, MEDIUMTEXT
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from haflow.core import limits as lim
from haflow.core.pools import DEFAULT_POOL
from haflow.metastore.types import UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = BigInteger().with_variant(Integer, "sqlite")
LONG_TEXT = Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb")
"""Text past MySQL's 64 KiB TEXT (up to 16 MiB there; unbounded elsewhere)."""
LONG_BYTES = LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")
"""Bytes past MySQL's 64 KiB BLOB."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Dag(Base):
    __tablename__ = "dag"
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(lim.FILELOC_CHARS))
    schedule: Mapped[str | None] = mapped_column(String(lim.SCHEDULE_CHARS))
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_active_runs: Mapped[int] = mapped_column(Integer, default=16)
    catchup: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(
        String(lim.TIMEZONE_CHARS), default="UTC", server_default="UTC"
    )
    """The IANA zone whose wall clock the cron schedule is read on."""
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    tags: Mapped[str] = mapped_column(String(lim.TAGS_CHARS), default="[]")
    description: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    structure: Mapped[str] = mapped_column(LONG_TEXT, default="{}", server_default="{}")
    notify: Mapped[str] = mapped_column(LONG_TEXT, default="[]", server_default="[]")
    """Who is notified of which event (haflow.dag.notifiers rules), read by the transaction
    that writes the event."""
    last_fire_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    parsed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    """Its file's code version now (`dag_code`): what new runs are created with."""


class DagCode(Base):
    """One code version of a DAG file, immutable, keyed by the hash of its contents
    (`haflow.dag.bundle`): the packed file and the helper modules it imports."""

    __tablename__ = "dag_code"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LONG_BYTES)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DagVersion(Base):
    """A code version a DAG has had, since when. A parse never makes a DAG go back to a
    version it had before (a master with a stale DAGs folder); `haflow dags push` may."""

    __tablename__ = "dag_version"
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS), primary_key=True)
    code_hash: Mapped[str] = mapped_column(
        String(64), ForeignKey("dag_code.hash"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(250), default="", server_default="")
    """The master (`[core] hostname`) whose DAGs folder it came from; "" if pushed."""


class DagRun(Base):
    __tablename__ = "dag_run"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        UniqueConstraint("dag_id", "scheduled_fire_at"),
        Index("ix_dag_run_state", "state"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    run_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    run_type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    conf: Mapped[str] = mapped_column(Text, default="{}")
    scheduled_fire_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by every change to the run's task instances that neither the leader nor an
    attempt's claim or report makes (a clear): the leader reads such a run again whole."""
    backfill_id: Mapped[int | None] = mapped_column(
        ForeignKey("backfill.id", ondelete="SET NULL"), index=True
    )
    """The backfill that created the run, if one did."""
    code_hash: Mapped[str | None] = mapped_column(String(64))
    """The code version (`dag_code`) its DAG had when the run was created: every attempt of
    the run runs that code. None for runs made before versions were kept."""


class Backfill(Base):
    """A request to run a DAG's intervals whose start lies in [start, end]. The leader
    creates the missing runs (at most `max_active_runs` of its own unfinished at once) in its
    fenced transactions; a run already there for an interval, made by the schedule or an
    earlier backfill, is that interval's run (one per interval: dag_run's unique fire time)."""

    __tablename__ = "backfill"
    __table_args__ = (Index("ix_backfill_state", "state"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    intervals: Mapped[int] = mapped_column(Integer)  # how many the range held when asked
    max_active_runs: Mapped[int] = mapped_column(Integer)
    reset_existing: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20))  # running, done
    created_by: Mapped[str] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TaskInstance(Base):
    """One task of one run. `attempt` is the latest attempt number (0 before the first)."""

    __tablename__ = "task_instance"
    __table_args__ = (
        UniqueConstraint("run_pk", "task_id"),
        Index("ix_task_instance_state", "state"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    task_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    state: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_s: Mapped[float] = mapped_column(default=0.0)
    retry_backoff_cap_s: Mapped[float | None] = mapped_column()
    """Exponential backoff of the retry delay, up to this many seconds; NULL: a fixed delay."""
    timeout_s: Mapped[float | None] = mapped_column()
    queue: Mapped[str] = mapped_column(String(lim.QUEUE_CHARS), default="default")
    pool: Mapped[str] = mapped_column(
        String(lim.ID_CHARS), default=DEFAULT_POOL, server_default=DEFAULT_POOL
    )
    pool_slots: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    worker_id: Mapped[str | None] = mapped_column(String(250))
    next_try_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sensing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """A sensor in reschedule mode: when its first poke began (its timeout counts from it)."""
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TaskAttempt(Base):
    """One numbered try of a task instance; claims and reports are conditional on its row."""

    __tablename__ = "task_attempt"
    __table_args__ = (
        UniqueConstraint("ti_id", "attempt"),
        Index("ix_task_attempt_state", "state"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    ti_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    epoch: Mapped[int] = mapped_column(BigInteger)
    worker_id: Mapped[str | None] = mapped_column(String(250))
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class Pool(Base):
    """A named number of slots: the task instances in flight in it (queued or running) hold
    at most `slots` of them, each its `pool_slots`; the leader queues nothing that would
    exceed it, and checks so in the transaction that queues."""

    __tablename__ = "pool"
    name: Mapped[str] = mapped_column(String(lim.ID_CHARS), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")


class TaskResult(Base):
    """What an attempt returned (JSON), written with its accepted successful report only: a
    reclaimed or lost attempt's report is rejected, so its result never lands. The result of a
    task in a run is the row of the attempt its task instance succeeded with."""

    __tablename__ = "task_result"
    __table_args__ = (Index("ix_task_result_run_pk", "run_pk"),)
    ti_id: Mapped[int] = mapped_column(
        ForeignKey("task_instance.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("dag_run.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    value: Mapped[str] = mapped_column(LONG_TEXT)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Leader(Base):
    """The fencing row: `epoch` only grows; every leader write checks it in its transaction."""

    __tablename__ = "leader"
    cluster: Mapped[str] = mapped_column(String(100), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(250))
    elector_mode: Mapped[str] = mapped_column(String(20))
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ElectionLease(Base):
    """The SQLite leader lease: `holder` leads `cluster` until `expires_at`, unless it renews."""

    __tablename__ = "election_lease"
    cluster: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(250))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Scheduler(Base):
    __tablename__ = "scheduler"
    id: Mapped[str] = mapped_column(String(250), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(100))
    hostname: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    elector_mode: Mapped[str] = mapped_column(String(20), default="")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Worker(Base):
    __tablename__ = "worker"
    id: Mapped[str] = mapped_column(String(250), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    hostname: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(1000), default="default")
    concurrency: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Event(Base):
    """Append-only history of every state change: what, who, under which epoch and attempt."""

    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_kind", "kind"), Index("ix_event_log_dag_id", "dag_id"))
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(250))
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    dag_id: Mapped[str | None] = mapped_column(String(lim.ID_CHARS))
    run_id: Mapped[str | None] = mapped_column(String(lim.ID_CHARS))
    task_id: Mapped[str | None] = mapped_column(String(lim.ID_CHARS))
    attempt: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")


class Notification(Base):
    """The outbox: one notification of one event to one target, written in the transaction
    that wrote the event. `key` (unique) is the same for every delivery of it; the leader
    claims rows under its epoch (`claim_epoch`, `tries`) and settles them conditionally on
    that claim, so a deposed leader's late outcome changes nothing."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_state_due_at", "state", "due_at"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(50))
    dag_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    run_id: Mapped[str] = mapped_column(String(lim.ID_CHARS))
    task_id: Mapped[str | None] = mapped_column(String(lim.ID_CHARS))
    attempt: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    claim_epoch: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str] = mapped_column(Text, default="")


class TaskLog(Base):
    __tablename__ = "task_log"
    __table_args__ = (Index("ix_task_log_ti_id_attempt", "ti_id", "attempt"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    ti_id: Mapped[int] = mapped_column(ForeignKey("task_instance.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    data: Mapped[str] = mapped_column(Text)


class ImportError_(Base):
    __tablename__ = "import_error"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    fileloc: Mapped[str] = mapped_column(String(lim.FILELOC_CHARS))
    line: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)


class WebUser(Base):
    """A login of the web UI and API; `password_hash` is a salted scrypt/pbkdf2 hash."""

    __tablename__ = "web_user"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """An API token of a user; only its SHA-256 is kept, so a leaked table leaks no token."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebSession(Base):
    """A logged-in browser. The cookie carries a random session id; only its SHA-256 is kept.
    Ended (`ended_at`) by logging out, or by a change of the user's password or role."""

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_user_id", "user_id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    sid_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str] = mapped_column(String(50), default="", server_default="")


class LoginFailure(Base):
    """Failed logins by client address: the login rate limit shared by every webserver."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_address_ts", "address", "ts"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(100))
    username: Mapped[str] = mapped_column(String(100))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)


class Webserver(Base):
    """A running webserver: shown on the Cluster page; `secret_fingerprint` lets
    `haflow doctor` see webservers configured with different secret keys."""

    __tablename__ = "webserver"
    id: Mapped[str] = mapped_column(String(250), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(250))
    pid: Mapped[int] = mapped_column(Integer)
    port: Mapped[int] = mapped_column(Integer)
    secret_fingerprint: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Variable(Base):
    """A named text value for tasks; `val` is its Fernet token (`haflow.metastore.crypto`),
    never the plaintext."""

    __tablename__ = "variable"
    key: Mapped[str] = mapped_column(String(lim.ID_CHARS), primary_key=True)
    val: Mapped[str] = mapped_column(LONG_TEXT)
    description: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Conn(Base):
    """A connection (`haflow.core.secrets.Connection`): `password` and `extra` (JSON) are
    Fernet tokens, the rest plaintext."""

    __tablename__ = "connection"
    conn_id: Mapped[str] = mapped_column(String(lim.ID_CHARS), primary_key=True)
    conn_type: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str | None] = mapped_column(String(500))
    login: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)
    schema: Mapped[str | None] = mapped_column(String(500))
    port: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(LONG_TEXT)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
