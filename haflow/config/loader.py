"""Load `Settings` once from haflow.cfg and the HAFLOW__ environment; render a default file.

Precedence, highest first (as Airflow): env HAFLOW__S__K, env HAFLOW__S__K_CMD, env
HAFLOW__S__K_SECRET, file `k`, file `k_cmd`, file `k_secret`, schema default. A `_cmd` or
`_secret` source is only evaluated when no higher source sets the value. This is the one
module that reads the environment and the config file.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from haflow.config.schema import (
    SCHEMA,
    SECTIONS,
    SettingSpec,
    check_section,
    coerce,
    section_specs,
    split_key,
    substitute_home,
)
from haflow.config.settings import Settings, build_settings
from haflow.errors import ConfigError

CONFIG_FILE_NAME = "haflow.cfg"
ENV_PREFIX = "HAFLOW__"
CMD_TIMEOUT = 30.0
"""Seconds a `_cmd` command may run before loading fails."""

_PRECEDENCE: tuple[tuple[str, str], ...] = (
    ("env", ""),
    ("env", "_cmd"),
    ("env", "_secret"),
    ("file", ""),
    ("file", "_cmd"),
    ("file", "_secret"),
)


@dataclass(frozen=True)
class _Raw:
    """One raw value found for a setting, and where it was found (for error messages)."""

    text: str
    origin: str


# (section, key, suffix) -> raw value, for one source (the environment or the file)
_Entries = dict[tuple[str, str, str], _Raw]


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """$HAFLOW_HOME if set and non-empty, else ~/haflow; always absolute."""
    env = os.environ if environ is None else environ
    home = env.get("HAFLOW_HOME") or "~/haflow"
    return Path(home).expanduser().absolute()


def load_settings(
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Read haflow.cfg (if present) and the environment into one checked Settings.

    `environ` defaults to os.environ; `home` to default_home(environ); `config_file` to
    home/haflow.cfg, which may be missing (all defaults). An explicit `config_file` must exist.
    Raises ConfigError for anything unknown or malformed.
    """
    env = os.environ if environ is None else environ
    home = (default_home(env) if home is None else home).expanduser().absolute()
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist or is not a file")
    path = home / CONFIG_FILE_NAME if config_file is None else config_file
    sources = {"env": _read_environ(env), "file": _read_file(path) if path.is_file() else {}}
    values: dict[str, dict[str, object]] = {name: {} for name in SECTIONS}
    for spec in SCHEMA:
        values[spec.section][spec.key] = _resolve(spec, sources, home)
    return build_settings(home, path, values)


def _read_environ(environ: Mapping[str, str]) -> _Entries:
    entries: _Entries = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        where = f"environment variable {name}"
        if not sep or not key or "__" in key:
            raise ConfigError(f"{where}: expected the form {ENV_PREFIX}SECTION__KEY")
        spec, suffix = split_key(section, key, where)
        slot = (spec.section, spec.key, suffix)
        if slot in entries:
            raise ConfigError(f"{where}: set twice, also as {entries[slot].origin}")
        entries[slot] = _Raw(text, where)
    return entries


def _read_file(path: Path) -> _Entries:
    parser = configparser.ConfigParser(interpolation=None, default_section="\0no-defaults")
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"{path}: cannot be read as an INI file: {exc}") from exc
    entries: _Entries = {}
    for section in parser.sections():
        check_section(section.lower(), str(path))
        for key, text in parser.items(section):
            spec, suffix = split_key(section.lower(), key, str(path))
            entries[(spec.section, spec.key, suffix)] = _Raw(text, f"{path} [{section}] {key}")
    return entries


def _resolve(spec: SettingSpec, sources: Mapping[str, _Entries], home: Path) -> object:
    """The coerced value of `spec` from the highest source that sets it, else its default."""
    for source, suffix in _PRECEDENCE:
        raw = sources[source].get((spec.section, spec.key, suffix))
        if raw is not None:
            return coerce(spec, _materialize(raw, suffix, home), raw.origin, home)
    return coerce(spec, spec.default, "the default", home)


def _materialize(raw: _Raw, suffix: str, home: Path) -> str:
    if suffix == "_cmd":
        return run_command(substitute_home(raw.text, home), raw.origin)
    if suffix == "_secret":
        return read_secret(Path(substitute_home(raw.text.strip(), home)).expanduser(), raw.origin)
    return raw.text


def run_command(command: str, origin: str, timeout: float = CMD_TIMEOUT) -> str:
    """Run `command` in a shell and return its stripped stdout.

    The shell gets its own process group so a timeout kills its children too. The command
    text is never echoed in errors since it may embed a secret.
    """
    pipe = subprocess.PIPE
    try:
        proc = subprocess.Popen(
            command, shell=True, stdout=pipe, stderr=pipe, text=True, start_new_session=True
        )
    except OSError as exc:
        raise ConfigError(f"{origin}: the command could not be started: {exc}") from exc
    with proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ConfigError(f"{origin}: the command did not finish within {timeout:g} s") from exc
    if proc.returncode != 0:
        raise ConfigError(
            f"{origin}: the command exited with status {proc.returncode}; "
            f"stderr: {stderr.strip() or '(empty)'}"
        )
    return stdout.strip()


def read_secret(path: Path, origin: str) -> str:
    """The stripped content of the secret file at `path`."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: cannot read the secret file {path}: {exc}") from exc


def render_default_config(home: Path) -> str:
    """A haflow.cfg text listing every section and setting, commented out at its default.

    Parsing the text yields the defaults; so does uncommenting every setting line.
    """
    lines = [
        "# haflow configuration file.",
        f"# {{HAFLOW_HOME}} in a value stands for the haflow home, here {home}.",
        f"# Any setting can be overridden by the environment variable {ENV_PREFIX}SECTION__KEY.",
        "# Settings marked sensitive may instead be given as <key>_cmd (a shell command",
        "# printing the value) or <key>_secret (a file holding the value).",
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for spec in section_specs(section):
            lines += _render_spec(spec)
    return "\n".join(lines) + "\n"


def _render_spec(spec: SettingSpec) -> list[str]:
    notes: list[str] = ["one of " + ", ".join(spec.choices) if spec.choices else spec.type]
    if spec.positive:
        notes.append("> 0")
    if spec.minimum is not None:
        notes.append(f">= {spec.minimum:g}")
    if spec.maximum is not None:
        notes.append(f"<= {spec.maximum:g}")
    if spec.sensitive:
        notes.append("sensitive")
    default = f" {spec.default}" if spec.default else ""
    return ["", f"# {spec.description} ({'; '.join(notes)})", f"# {spec.key} ={default}"]
