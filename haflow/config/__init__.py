"""haflow configuration: the settings schema, the typed Settings object and its loader.

Settings are loaded once (file + environment) and passed down; nothing else reads config.
"""

from __future__ import annotations

from haflow.config.loader import default_home, load_settings, render_default_config
from haflow.config.schema import SCHEMA, SettingSpec
from haflow.config.settings import (
    CelerySettings,
    CoreSettings,
    ElectionSettings,
    LoggingSettings,
    SchedulerSettings,
    Settings,
    WebserverSettings,
    WorkerSettings,
)

__all__ = [
    "SCHEMA",
    "CelerySettings",
    "CoreSettings",
    "ElectionSettings",
    "LoggingSettings",
    "SchedulerSettings",
    "SettingSpec",
    "Settings",
    "WebserverSettings",
    "WorkerSettings",
    "default_home",
    "load_settings",
    "render_default_config",
]
