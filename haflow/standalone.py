"""`haflow standalone`: the embedded default. Nothing to configure, nothing to install.

On first start it creates $HAFLOW_HOME with a config file, a SQLite metastore and example DAGs;
then runs the scheduler with the local executor and prints each run's and task's progress.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import click

from haflow.config import Settings, default_home, load_settings, render_default_config
from haflow.logs import setup_logging
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.records import EventRow
from haflow.metastore.repository import Repository
from haflow.scheduler.build import build_scheduler

EXAMPLES = Path(__file__).parent / "example_dags"
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
    """Create home, config file and DAGs folder (with the examples) if missing; load settings."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "haflow.cfg"
    if not cfg.exists():
        cfg.write_text(render_default_config(home))
        click.echo(f"wrote a default configuration to {cfg}")
    settings = load_settings(home)
    dags = settings.core.dags_folder
    if not dags.exists():
        dags.mkdir(parents=True)
        for example in sorted(EXAMPLES.glob("example_*.py")):
            shutil.copy(example, dags / example.name)
        click.echo(f"created {dags} with example DAGs")
    return settings


def run_standalone(home: str | None, parallelism: int | None = None) -> None:
    from haflow.cli.daemons import run_until_signalled

    settings = prepare_home(Path(home) if home else default_home())
    overrides: dict[str, object] = {"election__mode": "none"}
    if parallelism is not None:
        overrides["core__parallelism"] = parallelism
    settings = settings.with_overrides(**overrides)
    setup_logging("WARNING")
    engine = create_engine(settings.core.sql_alchemy_conn)
    st = migrate(engine)
    click.echo(f"metastore {settings.core.sql_alchemy_conn} at revision {st.current}")
    click.echo(
        f"DAGs folder {settings.core.dags_folder}; trigger one with "
        "`haflow dags trigger example_hello`; Ctrl-C stops"
    )
    service = build_scheduler(settings)
    progress = Progress(Repository(engine, cluster=settings.scheduler.cluster))
    progress.start()
    try:
        run_until_signalled(service)
    finally:
        progress.stop()
    click.echo("standalone stopped; no attempt left running")


class Progress:
    """Prints runs and task attempts as they change, read from the event log (one poll a second)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._last = 0

    def start(self) -> None:
        events = self.repo.events(since_id=0, limit=1_000_000)
        self._last = events[-1].id if events else 0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._poll()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._poll()

    def _poll(self) -> None:
        try:
            events = self.repo.events(since_id=self._last, limit=500)
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
