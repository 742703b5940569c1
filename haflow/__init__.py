"""haflow: a workflow orchestrator built for high availability."""

from __future__ import annotations

__version__ = "0.1.0"
