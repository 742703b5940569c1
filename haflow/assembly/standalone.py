"""`haflow standalone`: the embedded default. Nothing to configure, nothing to install.

On first start it creates $HAFLOW_HOME with a config file, a SQLite metastore, example DAGs, a
web secret key and an `admin` user with a generated password (kept in the home, mode 0600);
then runs the scheduler with the local executor, serves the web UI on 127.0.0.1, and prints
each run's and task's progress.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.engine import Engine, make_url

from haflow.assembly.scheduler import build_scheduler
from haflow.assembly.secrets import check_secrets_at_start
from haflow.assembly.web import WebserverHeartbeat
from haflow.config import Settings, default_home, load_settings, render_default_config
from haflow.core.clock import utcnow
from haflow.errors import ConfigError
from haflow.logs import setup_logging
from haflow.metastore.crypto import Crypto
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.records import EventRow
from haflow.metastore.repository import Repository
from haflow.metrics.endpoint import instrument
from haflow.scheduler.service import SchedulerService
from haflow.web.credentials import hash_password, new_password

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"  # haflow/example_dags
ADMIN_PASSWORD_FILE = "standalone_admin_password.txt"
SECRET_KEY_FILE = "webserver_secret_key"
FERNET_KEY_FILE = "fernet_key"
_SHOWN = (
    "run.",
    "ti.success",
    "ti.failed",
    "ti.up_for_retry",
    "ti.upstream_failed",
    "attempt.claimed",
    "leader.",
)


def prepare_home(home: Path) -> Settings:
    """Create home (mode 0700), config file, keys and DAGs folder (with the examples) if
    missing; load settings. The generated keys are files of the home (0600) named in
    haflow.cfg (`secret_key_secret`, `fernet_key_secret`), so every command run with this home
    (`haflow doctor`, `haflow users`) uses the keys the standalone uses."""
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
    cfg = home / "haflow.cfg"
    if not cfg.exists():
        _private_file(cfg, lambda: render_default_config(home))
        click.echo(f"wrote a default configuration to {cfg}")
    settings = load_settings(home)
    missing = [
        (section, key, home / name, make)
        for section, key, name, make in (
            ("webserver", "secret_key", SECRET_KEY_FILE, _web_key),
            ("core", "fernet_key", FERNET_KEY_FILE, _fernet_key),
        )
        if not settings.get(section, key)
    ]
    for section, key, path, make in missing:
        _name_key_file(cfg, section, key, path, make)
    if missing:
        settings = load_settings(home)
    dags = settings.core.dags_folder
    if not dags.exists():
        dags.mkdir(parents=True)
        examples = sorted(EXAMPLES.glob("example_*.py"))
        for example in examples:
            shutil.copy(example, dags / example.name)
        names = ", ".join(e.stem for e in examples) or "none: they are missing from this install"
        click.echo(f"created {dags} with example DAGs ({names})")
    return settings


def _web_key() -> str:
    return secrets.token_hex(32)


def _fernet_key() -> str:
    """A Fernet key (32 random bytes, url-safe base64), the format `cryptography` reads."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _name_key_file(cfg: Path, section: str, key: str, path: Path, make: Callable[[], str]) -> None:
    """Create the key file `path` (0600) if missing and name it in `cfg` as `<key>_secret`,
    right under the setting's commented default (or the section's header)."""
    _private_file(path, make)
    line = f"{key}_secret = {path}\n"
    lines = cfg.read_text().splitlines(keepends=True)
    header = next((i for i, t in enumerate(lines) if t.strip() == f"[{section}]"), None)
    if header is None:
        lines += [f"\n[{section}]\n", line]
    else:
        end = next(
            (i for i in range(header + 1, len(lines)) if lines[i].startswith("[")), len(lines)
        )
        default = next(
            (i for i in range(header + 1, end) if lines[i].strip() == f"# {key} ="), header
        )
        lines.insert(default + 1, line)
    cfg.write_text("".join(lines))
    click.echo(f"generated {path} and named it in {cfg} ([{section}] {key}_secret)")


def _private_database(url: str) -> None:
    """A SQLite metastore file readable by its owner only (it holds the users' password hashes
    and every task's log); SQLite gives its -wal and -shm files the same mode."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if path.exists():
        path.chmod(0o600)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _private_file(path: Path, make: Callable[[], str]) -> str:
    """The content of `path`, created with `make()` and mode 0600 if missing."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make())
    return path.read_text().strip()


def ensure_admin(repo: Repository, home: Path) -> tuple[str, str | None]:
    """The admin user and its password: made on first start when the metastore has no user."""
    pw_file = home / ADMIN_PASSWORD_FILE
    if repo.users.count() == 0:
        pw_file.unlink(missing_ok=True)
        password = _private_file(pw_file, new_password)
        repo.users.create("admin", hash_password(password), "Admin", utcnow())
    return "admin", pw_file.read_text().strip() if pw_file.exists() else None


class WebThread:
    """The web UI on a thread (werkzeug's threaded server). The port is bound when it is built,
    so a taken port is a ConfigError before anything else starts."""

    name = "web UI"

    def __init__(self, settings: Settings, engine: Engine) -> None:
        from werkzeug.serving import make_server

        from haflow.web import create_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        ws = settings.webserver
        try:
            self.server = make_server(
                ws.host,
                ws.port,
                # any key: the standalone's own is generated; one set by hand is the user's
                create_app(settings, engine=engine, instrument=instrument, min_key_bytes=1),
                threaded=True,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the web UI on {ws.host}:{ws.port}: {exc}; "
                "choose another with --port or HAFLOW__WEBSERVER__PORT"
            ) from exc
        self._thread = threading.Thread(target=self.server.serve_forever, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def healthy(self) -> bool:
        return self._thread.is_alive()


def run_standalone(
    home: str | None,
    parallelism: int | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> None:
    from haflow.assembly.scheduler import run_until_signalled

    setup_logging("WARNING")
    run_until_signalled(build_standalone(home, parallelism, port, host))
    click.echo("standalone stopped; no attempt left running")


def build_standalone(
    home: str | None,
    parallelism: int | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> SchedulerService:
    """The home prepared, the metastore migrated, the admin made: a scheduler whose parts
    include the web UI, its heartbeat and the progress printer, so that one dying stops it."""
    home_path = Path(home) if home else default_home()
    settings = prepare_home(home_path)
    overrides: dict[str, object] = {"election__mode": "none", "webserver__host": host}
    if parallelism is not None:
        overrides["core__parallelism"] = parallelism
    if port is not None:
        overrides["webserver__port"] = port
    settings = settings.with_overrides(**overrides)
    engine = create_engine(settings.core.sql_alchemy_conn)
    _private_database(settings.core.sql_alchemy_conn)
    st = migrate(engine)
    click.echo(f"metastore {settings.core.sql_alchemy_conn} at revision {st.current}")
    click.echo(
        f"DAGs folder {settings.core.dags_folder}; trigger one with "
        "`haflow dags trigger example_hello`; Ctrl-C stops"
    )
    repo = Repository(
        engine, cluster=settings.scheduler.cluster, crypto=Crypto(settings.core.fernet_key)
    )
    check_secrets_at_start(repo)
    user, password = ensure_admin(repo, home_path)
    web = WebThread(settings, engine)
    beat = WebserverHeartbeat(settings, f"standalone:{settings.webserver.port}")
    click.echo(
        f"web UI at http://{settings.webserver.host}:{settings.webserver.port}/ : log in as "
        f"{user} with password {password or '(changed; see `haflow users`)'} "
        f"(kept in {home_path / ADMIN_PASSWORD_FILE})"
    )
    return build_scheduler(settings, parts=[web, beat, Progress(repo)])


class Progress:
    """Prints runs and task attempts as they change, read from the event log (one poll a second)."""

    name = "progress printer"

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._last = 0

    def start(self) -> None:
        events = self.repo.history.events(since_id=0, limit=1_000_000)
        self._last = events[-1].id if events else 0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._poll()

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._poll()

    def _poll(self) -> None:
        try:
            events = self.repo.history.events(since_id=self._last, limit=500)
        except Exception as exc:  # progress is best effort; the scheduler reports real trouble
            click.echo(f"(progress unavailable: {exc})", err=True)
            return
        for ev in events:
            self._last = ev.id
            if ev.kind.startswith(_SHOWN):
                click.echo(format_event(ev))


def format_event(ev: EventRow) -> str:
    where = " ".join(x for x in (ev.dag_id, ev.run_id, ev.task_id) if x)
    attempt = f" attempt {ev.attempt}" if ev.attempt else ""
    return f"{ev.ts:%H:%M:%S} {ev.kind:<20} {where}{attempt}"
