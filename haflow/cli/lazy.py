"""Command groups that import a subcommand's module only when that subcommand is asked for
(click's "Lazily Loading Subcommands"), so that `haflow version` or `haflow --help` loads no
database, broker, coordination or web library.

Each lazy entry carries its command's short help, so the group's `--help` lists it without
importing it; tests/unit/test_cli_imports.py checks that it is the command's own short help.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from gettext import gettext as _
from typing import Any

import click


@dataclass(frozen=True)
class Lazy:
    """A subcommand known by where it is defined ("module:attribute") and by its short help."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        module, attribute = self.target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is a {type(command).__name__}, not a click command")
        return command


class LazyGroup(click.Group):
    """A click group whose `lazy_subcommands` are imported on first use; a command added the
    usual way (`add_command`, `@group.command()`) takes precedence over a lazy one of its name."""

    def __init__(
        self, *args: Any, lazy_subcommands: Mapping[str, Lazy] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def _lazy(self, name: str) -> Lazy | None:
        return None if name in self.commands else self.lazy_subcommands.get(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self._lazy(cmd_name)
        return super().get_command(ctx, cmd_name) if lazy is None else lazy.load()

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command as the listing shows it: a lazy one by a stand-in holding its short help
        (click shortens that to the width exactly as it shortens the command's own help)."""
        lazy = self._lazy(name)
        if lazy is None:
            return self.get_command(ctx, name)
        return click.Command(name, help=lazy.short_help)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (click.Group.format_commands), without importing lazy commands."""
        commands = [
            (name, cmd)
            for name in self.list_commands(ctx)
            if (cmd := self._listed(ctx, name)) is not None and not cmd.hidden
        ]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _cmd in commands)
        with formatter.section(_("Commands")):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])
