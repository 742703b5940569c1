"""What every command shares: the settings, loaded once, and a repository made on first use."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import click

from haflow.config import Settings, load_settings

if TYPE_CHECKING:
    from haflow.metastore.repository import Repository
    from haflow.worker.secrets import SecretSource

# The metastore's modules (SQLAlchemy, Alembic, cryptography) are imported when a command first
# reaches for the engine or the repository, never by the commands that do not.


@dataclass
class CliContext:
    home: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from pathlib import Path

            self._settings = load_settings(Path(self.home) if self.home else None)
        return self._settings

    @cached_property
    def engine(self):  # type: ignore[no-untyped-def]
        from haflow.metastore.engine import create_engine

        return create_engine(self.settings.core.sql_alchemy_conn)

    @cached_property
    def repo(self) -> Repository:
        from haflow.metastore.crypto import Crypto
        from haflow.metastore.repository import Repository
        from haflow.metastore.schema_version import require_current

        require_current(self.engine)
        # events name who did it: the user running the command
        actor = f"cli:{getpass.getuser()}"
        crypto = Crypto(self.settings.core.fernet_key)
        return Repository(
            self.engine, cluster=self.settings.scheduler.cluster, actor=actor, crypto=crypto
        )

    def secrets(self) -> SecretSource:
        """Variables and connections for `tasks test` / `dags test`: the metastore is reached
        only when a task asks for one."""
        from haflow.worker.secrets import SecretSource

        return SecretSource(
            lambda key: self.repo.variables.get(key).value,
            lambda conn_id: self.repo.connections.get(conn_id),
        )


pass_ctx = click.make_pass_decorator(CliContext)
