"""The checks `haflow doctor` runs from the node it is on, one `Check` each.

Each check probes a real connection the way the daemons would make it and says exactly what
is wrong: which host, which step (name, port, login, schema, clock), and what to do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from haflow.config import Settings
from haflow.config.settings import secret_key_problem
from haflow.doctor.probe import Finding, Problem, is_loopback, tcp
from haflow.errors import HaflowError, SecretKeyError
from haflow.metastore.crypto import Crypto
from haflow.metastore.engine import SERVER_PORTS, create_engine, servers
from haflow.metastore.migrate import status

DEFAULT_PORTS = {
    **SERVER_PORTS,
    "amqp": 5672,
    "pyamqp": 5672,
    "redis": 6379,
    "rediss": 6380,
}
MAX_SKEW_S = 2.0
BROKER_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class Check:
    name: str
    finding: Finding

    @property
    def ok(self) -> bool:
        return self.finding.problem is Problem.OK


def _endpoint(url: str, scheme: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or DEFAULT_PORTS.get(scheme, 0)


def _with_hint(f: Finding, host: str, what: str) -> Finding:
    """Name a URL that points at this node itself when it fails there.

    A loopback URL copied from a single-machine setup to a node that is not the server's host
    is refused (nothing listens here): that is its own problem, LOOPBACK. Any other failure on
    a loopback URL keeps its problem and gets the same hint.
    """
    if f.problem is Problem.OK or not host or not is_loopback(host):
        return f
    hint = (
        f"the {what} URL points at this node itself ({host}): on a node that is not the "
        f"{what}'s host, give the {what}'s host name instead"
    )
    if f.problem is Problem.REFUSED:
        return Finding(Problem.LOOPBACK, f"{f.detail}; {hint}")
    return Finding(f.problem, f"{f.detail}; {hint}")


Reached = list[tuple[str, int, Finding]]
"""Each server of the metastore URL, and what connecting to it found."""


def reach_metastore(url: str) -> Reached:
    """Connect to every server the metastore URL names (none for SQLite), once."""
    return [(h, p, _with_hint(tcp(h, p), h, "metastore")) for h, p in servers(url)]


def check_metastore(
    settings: Settings, reached: Reached | None = None
) -> tuple[list[Check], Engine | None]:
    url = settings.core.sql_alchemy_conn
    reached = reach_metastore(url) if reached is None else reached
    host = ""
    if reached:
        # every server of a multi-host URL; one that answers is enough to go on (libpq picks it)
        ok = [h for h, _p, f in reached if f.problem is Problem.OK]
        if not ok:
            return [Check("metastore", reached[0][2])], None
        host = ok[0]
    engine = create_engine(url)
    try:
        st = status(engine)
    except HaflowError as exc:
        return [Check("metastore", Finding(Problem.CONFIG, str(exc)))], None
    except OperationalError as exc:
        return [
            Check("metastore", _with_hint(_login_failure(str(exc.orig)), host, "metastore"))
        ], None
    if not st.up_to_date:
        return [
            Check(
                "metastore",
                Finding(
                    Problem.SCHEMA,
                    (
                        f"reachable, but the schema is at revision "
                        f"{st.current or 'none (empty)'} and this haflow needs {st.head}: "
                        "run `haflow db migrate`"
                    ),
                ),
            )
        ], engine
    return [
        Check(
            "metastore",
            Finding(Problem.OK, f"{engine.dialect.name} reachable, schema at {st.current}"),
        )
    ], engine


REPLICATION = text(
    "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY application_name"
)
PRIMARY = text("SELECT inet_server_addr()::text, inet_server_port()")


def check_replication(url: str, engine: Engine, reached: Reached | None = None) -> Check:
    """A metastore whose URL names several servers (PostgreSQL under Patroni, docs/design.md
    section 16): which one is the primary, and whether a synchronous standby streams from it.
    Without one, an acknowledged commit can be lost with the primary. Reading another
    session's replication state needs a superuser or the pg_monitor role."""
    reached = reach_metastore(url) if reached is None else reached
    down = [f"{h}:{p}" for h, p, f in reached if f.problem is not Problem.OK]
    try:
        with engine.connect() as conn:
            addr, port = conn.execute(PRIMARY).one()
            rows = conn.execute(REPLICATION).all()
            # the primary as the URL names it (libpq's host of the connection it kept)
            info = getattr(conn.connection.driver_connection, "info", None)
            named = str(getattr(info, "host", "") or "")
    except OperationalError as exc:
        return Check("replication", _login_failure(str(exc.orig)))
    host = named if named and not named.startswith("/") else str(addr or "socket").split("/")[0]
    primary = f"{host}:{port}"
    standbys = ", ".join(f"{r.application_name} {r.state} {r.sync_state}" for r in rows) or "none"
    said = f"primary {primary}; standbys: {standbys}"
    if down:
        said += f"; not reachable: {', '.join(down)}"
    synced = [r for r in rows if r.state == "streaming" and r.sync_state in ("sync", "quorum")]
    if synced:
        return Check("replication", Finding(Problem.OK, said))
    return Check(
        "replication",
        Finding(
            Problem.REPLICATION,
            f"{said}: no synchronous standby streams from the primary, so a commit can be lost "
            "with it and nothing can replace it (start the other members; Patroni's "
            "synchronous_mode names one once it streams; `patronictl list`)",
        ),
    )


def _login_failure(message: str) -> Finding:
    lowered = message.lower()
    if any(k in lowered for k in ("password", "access denied", "authentication")):
        return Finding(Problem.AUTH, f"the server refused the credentials: {message.strip()}")
    if "timeout" in lowered or "timed out" in lowered:
        return Finding(Problem.TIMEOUT, message.strip())
    return Finding(Problem.RESET, message.strip())


def check_clock(engine: Engine) -> Check:
    from haflow.metastore.dbclock import server_utcnow

    if engine.dialect.name == "sqlite":
        return Check("clock", Finding(Problem.OK, "SQLite runs on this node: no skew"))
    server = server_utcnow(engine)
    skew = (datetime.now(UTC) - server).total_seconds()
    if abs(skew) > MAX_SKEW_S:
        return Check(
            "clock",
            Finding(
                Problem.CLOCK,
                (
                    f"this node's clock is {skew:+.2f} s off the metastore's (more than "
                    f"{MAX_SKEW_S:g} s): heartbeats and timeouts would misfire; run NTP/chrony"
                ),
            ),
        )
    return Check("clock", Finding(Problem.OK, f"{skew:+.3f} s from the metastore"))


def check_broker(settings: Settings) -> Check:
    """The broker; for Celery's failover list (`url;url;...`, the nodes of a RabbitMQ cluster
    with quorum queues) each node, passing when a majority answers: quorum queues serve on a
    majority of their nodes."""
    urls = [u.strip() for u in settings.celery.broker_url.split(";") if u.strip()]
    if len(urls) <= 1:
        return _check_one_broker(settings.celery.broker_url)
    found = [_check_one_broker(u) for u in urls]
    ok = sum(1 for c in found if c.ok)
    said = "; ".join(c.finding.detail for c in found)
    if 2 * ok > len(urls):
        return Check("broker", Finding(Problem.OK, f"{ok} of {len(urls)} broker nodes: {said}"))
    first = next(c for c in found if not c.ok)
    return Check(
        "broker",
        Finding(first.finding.problem, f"{ok} of {len(urls)} broker nodes, no majority: {said}"),
    )


def _check_one_broker(url: str) -> Check:
    scheme = urlsplit(url).scheme
    host, port = _endpoint(url, scheme)
    reach = _with_hint(tcp(host, port), host, "broker")
    if reach.problem is not Problem.OK:
        return Check("broker", reach)
    result: list[Finding] = []
    worker = threading.Thread(target=lambda: result.append(_broker_login(url)), daemon=True)
    worker.start()
    worker.join(BROKER_TIMEOUT_S)
    if not result:  # accepted the connection, then said nothing: frozen or overloaded
        return Check(
            "broker",
            Finding(
                Problem.TIMEOUT,
                (
                    f"the broker at {host}:{port} accepted the connection but did not answer "
                    f"within {BROKER_TIMEOUT_S:g} s: is it frozen or overloaded?"
                ),
            ),
        )
    if result[0].problem is Problem.OK:
        return Check(
            "broker",
            Finding(Problem.OK, f"{scheme} broker at {host}:{port} accepts our credentials"),
        )
    return Check("broker", _with_hint(result[0], host, "broker"))


def _broker_login(url: str) -> Finding:
    from kombu.connection import Connection

    options = {"max_retries": 0, "socket_timeout": 3, "socket_connect_timeout": 3}
    try:
        conn = Connection(  # type: ignore[no-untyped-call]
            url, connect_timeout=3, transport_options=options
        )
        with conn:
            conn.ensure_connection(max_retries=1, timeout=3)  # type: ignore[no-untyped-call]
    except Exception as exc:  # transports raise their own types; classify by message
        return _broker_failure(exc)
    return Finding(Problem.OK, "")


def _broker_failure(exc: Exception) -> Finding:
    message = f"{type(exc).__name__}: {exc}"
    lowered = message.lower()
    if any(
        k in lowered for k in ("access_refused", "auth", "password", "noperm", "invalid username")
    ):
        return Finding(Problem.AUTH, f"the broker refused the credentials ({message})")
    if "timed out" in lowered or "timeout" in lowered:
        return Finding(
            Problem.TIMEOUT,
            f"the broker accepted the connection but did not "
            f"answer ({message}): is it frozen or overloaded?",
        )
    return Finding(Problem.RESET, f"the broker dropped the connection ({message})")


def check_visibility(settings: Settings) -> Check:
    """Redis redelivers an unacknowledged message after the visibility timeout: a task that
    may run longer would get a second delivery (rejected by the claim, but wasted)."""
    from haflow.assembly.scheduler import parse_folder

    limit = settings.celery.visibility_timeout
    longest = [
        (t.timeout_s, f"{d.dag_id}.{t.task_id}")
        for d in parse_folder(settings).dags.values()
        for t in d.defs
        if t.timeout_s is not None
    ]
    over = sorted((s, name) for s, name in longest if s >= limit)
    if over:
        return Check(
            "visibility",
            Finding(
                Problem.CONFIG,
                (
                    f"[celery] visibility_timeout is {limit:g} s but {over[-1][1]} may run "
                    f"{over[-1][0]:g} s: raise it above the longest execution_timeout"
                ),
            ),
        )
    return Check(
        "visibility",
        Finding(Problem.OK, (f"visibility timeout {limit:g} s is above every execution_timeout")),
    )


def check_zookeeper(settings: Settings) -> Check:
    from haflow.election.zookeeper import make_client, probe_hosts

    e = settings.election
    client = make_client(e.zk_hosts, e.zk_session_timeout, e.zk_auth)
    try:
        client.start(timeout=5)
    except Exception:
        client.close()
        return Check(
            "zookeeper",
            Finding(
                Problem.ZOOKEEPER,
                f"no session with {e.zk_hosts} within 5 s (each member: {probe_hosts(e.zk_hosts)})"
                + _zk_loopback_hint(e.zk_hosts),
            ),
        )
    client.stop()
    client.close()
    return Check(
        "zookeeper", Finding(Problem.OK, f"session opened (each member: {probe_hosts(e.zk_hosts)})")
    )


def _zk_loopback_hint(zk_hosts: str) -> str:
    servers = [s.strip().rpartition(":")[0] for s in zk_hosts.split("/", 1)[0].split(",")]
    if any(is_loopback(host) for host in servers if host):
        return (
            "; [election] zk_hosts points at this node itself: on a node that is not a "
            "ZooKeeper member, list the members' host names"
        )
    return ""


def check_dags(settings: Settings, engine: Engine) -> Check:
    """This node's DAGs folder against the metastore's versions. A node without a DAGs
    folder (a worker) needs none: it runs each run's version from the metastore."""
    from haflow.assembly.scheduler import parse_folder
    from haflow.metastore.repository import Repository

    folder = settings.core.dags_folder
    if not folder.is_dir():
        why = f"no DAGs folder here ({folder}): this node runs DAG code from the metastore"
        return Check("dags", Finding(Problem.OK, why))
    stored = {d.dag_id: d for d in Repository(engine).dags.all()}
    if not stored:
        return Check("dags", Finding(Problem.OK, "no DAGs parsed by a scheduler yet"))
    here = {d: p.record.code_hash for d, p in parse_folder(settings).dags.items()}
    missing = sorted(set(stored) - set(here))
    differ = sorted(d for d in here if d in stored and here[d] != stored[d].code_hash)
    extra = sorted(set(here) - set(stored))
    if missing or differ or extra:
        parts = [
            f"{label}: {', '.join(ids)}"
            for label, ids in (
                ("another version here", differ),
                ("missing here", missing),
                ("not in the metastore yet", extra),
            )
            if ids
        ]
        why = (
            f"this node's DAGs folder {folder} differs from the metastore's DAG versions ("
            + "; ".join(parts)
            + "); deploy the same files to every master, or see `haflow dags versions`"
        )
        return Check("dags", Finding(Problem.DAGS, why))
    return Check("dags", Finding(Problem.OK, f"{len(here)} DAGs match the metastore's versions"))


def check_webserver_keys(settings: Settings, engine: Engine) -> Check:
    """Every live webserver must sign cookies with this node's key, or logins break at random."""
    from haflow.core.clock import utcnow
    from haflow.metastore.repository import Repository
    from haflow.status import WEBSERVER_MAX_AGE_S, webservers
    from haflow.web.credentials import fingerprint

    live = [
        w
        for w in webservers(Repository(engine), utcnow(), WEBSERVER_MAX_AGE_S)
        if w["state"] != "dead"
    ]
    if not settings.webserver.secret_key:  # a worker: no key of its own to compare
        keys = {w["secret_fingerprint"] for w in live}
        if len(keys) > 1:
            return Check(
                "webkeys",
                Finding(
                    Problem.KEYS,
                    f"the {len(live)} live webservers sign session cookies with {len(keys)} "
                    "different [webserver] secret_keys: a login on one is refused by another; "
                    "give every webserver the same key and restart them",
                ),
            )
        return Check(
            "webkeys",
            Finding(Problem.OK, f"no key on this node; {len(live)} live webserver(s) share one"),
        )
    mine = fingerprint(settings.webserver.secret_key)[:12]
    other = sorted(w["webserver"] for w in live if w["secret_fingerprint"] != mine)
    if other:
        return Check(
            "webkeys",
            Finding(
                Problem.KEYS,
                (
                    f"webservers {', '.join(other)} sign session cookies with another "
                    "[webserver] secret_key than this node's: a login on one is refused by the "
                    "other; give every webserver the same key and restart them"
                ),
            ),
        )
    return Check("webkeys", Finding(Problem.OK, f"{len(live)} live webserver(s) share this key"))


def check_security(settings: Settings, allow_root: bool) -> list[Check]:
    out = []
    if os.geteuid() == 0 and not allow_root:
        out.append(
            Check(
                "user",
                Finding(
                    Problem.SECURITY,
                    (
                        "running as root: daemons should run as a dedicated user "
                        "(--allow-root to accept)"
                    ),
                ),
            )
        )
    else:
        out.append(Check("user", Finding(Problem.OK, f"uid {os.geteuid()}")))
    out.append(Check("secret_key", _secret_key_finding(settings.webserver.secret_key)))
    return out


EMPTY_FERNET_KEY = Finding(
    Problem.SECURITY,
    "[core] fernet_key is empty: set the same non-empty value on every node "
    "(HAFLOW__CORE__FERNET_KEY_SECRET names a file holding it)",
)


def check_fernet_key(settings: Settings, engine: Engine | None) -> Check:
    """`[core] fernet_key` must be well formed and decrypt every variable and connection the
    metastore holds (`engine`, None when it cannot be read): else webservers, workers and
    standalone refuse to start, and tasks cannot read their secrets."""
    try:
        crypto = Crypto(settings.core.fernet_key)
    except SecretKeyError as exc:
        return Check("fernet_key", Finding(Problem.CONFIG, str(exc)))
    if engine is None:
        unchecked = Finding(Problem.OK, "set (not checked against the metastore's secrets)")
        return Check("fernet_key", unchecked if crypto.keys else EMPTY_FERNET_KEY)
    return Check("fernet_key", _stored_secrets(engine, crypto))


def _stored_secrets(engine: Engine, crypto: Crypto) -> Finding:
    from haflow.metastore.repository import Repository

    repo = Repository(engine, crypto=crypto)
    try:
        variables, connections = repo.variables.count(), repo.connections.count()
        repo.check_secrets()
    except SecretKeyError as exc:
        return Finding(Problem.CONFIG, str(exc))
    except HaflowError as exc:
        return Finding(Problem.RESET, f"could not read the stored secrets: {exc}")
    if not crypto.keys:  # and nothing stored, or check_secrets would have said so
        return EMPTY_FERNET_KEY
    return Finding(
        Problem.OK,
        f"{crypto.keys} key(s); decrypts all {variables + connections} stored secrets "
        f"({variables} variable(s), {connections} connection(s))",
    )


def _secret_key_finding(key: str) -> Finding:
    """Only webservers need `[webserver] secret_key` (it signs every session): a worker
    without one is as it should be; a short one is what a webserver refuses."""
    if not key:
        return Finding(Problem.OK, "not set: this node cannot serve the web UI (right on a worker)")
    problem = secret_key_problem(key)
    return Finding(Problem.SECURITY, problem) if problem else Finding(Problem.OK, "set")


def _on_the_metastore(
    settings: Settings, engine: Engine, reachable: bool, reached: Reached
) -> Iterator[Check]:
    """The checks that read the metastore: the clock, then (migrated) replication when the URL
    names several servers, this node's DAG files, the webservers' keys."""
    yield check_clock(engine)
    if not reachable:
        return
    if engine.dialect.name == "postgresql" and len(reached) > 1:
        yield check_replication(settings.core.sql_alchemy_conn, engine, reached)
    yield check_dags(settings, engine)
    yield check_webserver_keys(settings, engine)


def run_checks(
    settings: Settings,
    *,
    allow_root: bool = False,
    report: Callable[[Check], None] = lambda c: None,
) -> list[Check]:
    checks: list[Check] = []

    def add(c: Check) -> None:
        checks.append(c)
        report(c)

    reached = reach_metastore(settings.core.sql_alchemy_conn)
    found, engine = check_metastore(settings, reached)
    for c in found:
        add(c)
    if engine is not None:
        for c in _on_the_metastore(settings, engine, checks[0].ok, reached):
            add(c)
    if settings.core.executor == "celery" or settings.celery.broker_url:
        add(check_broker(settings))
        if settings.celery.broker_url.startswith("redis"):
            add(check_visibility(settings))
    if settings.election.zk_hosts:
        add(check_zookeeper(settings))
    for c in check_security(settings, allow_root):
        add(c)
    add(check_fernet_key(settings, engine if checks[0].ok else None))
    if engine is not None:
        engine.dispose()
    return checks
