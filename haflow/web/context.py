"""What every request handler shares: settings, the repository and the clock, set once per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from haflow.config import Settings
from haflow.core.clock import Clock
from haflow.metastore.repository import Repository


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    repo: Repository
    clock: Clock

    @property
    def now(self) -> datetime:
        return self.clock()


def web() -> WebContext:
    ctx: WebContext = current_app.extensions["haflow"]
    return ctx
