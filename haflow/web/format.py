"""Jinja filters: times as people read them, and states as CSS classes."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from haflow.web.context import web


def dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def ago(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = (web().now - value).total_seconds()
    if abs(seconds) < 120:
        return f"{seconds:.1f} s ago" if seconds >= 0 else f"in {-seconds:.1f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min ago" if seconds >= 0 else f"in {-seconds / 60:.0f} min"
    return dt(value)


def state_class(state: str | None) -> str:
    return "st-" + (state or "none").replace(" ", "_")


COLORS = {
    "success": "#2e8b57",
    "failed": "#c0392b",
    "running": "#2b7bd6",
    "queued": "#7a62c9",
    "up_for_retry": "#d89a1d",
    "up_for_reschedule": "#5fb3b3",
    "rescheduled": "#5fb3b3",
    "upstream_failed": "#e67e22",
    "lost": "#6d4c41",
}


def color(state: str | None) -> str:
    return COLORS.get(state or "", "#c5cbd5")


def register_filters(app: Flask) -> None:
    app.add_template_filter(color, "color")
    app.add_template_filter(dt, "dt")
    app.add_template_filter(ago, "ago")
    app.add_template_filter(state_class, "state")
