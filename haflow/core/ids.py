"""The one check of user-supplied identifiers, shared by every entry point (CLI, REST API, web
pages) through the repository: an id that passes is safe in a URL path, a log line and a
`String(250)` column."""

from __future__ import annotations

import re

from haflow.errors import InvalidRequest

RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,250}$")
RUN_ID_RULE = "1 to 250 characters of letters, digits and _ . : + -"


def check_run_id(run_id: object, field: str = "run_id") -> str:
    """`run_id` if it is a valid run id, else InvalidRequest naming `field` and the rule."""
    if isinstance(run_id, str) and RUN_ID.match(run_id):
        return run_id
    shown = repr(run_id) if len(repr(run_id)) <= 60 else repr(run_id)[:57] + "..."
    raise InvalidRequest(f"{field} must be {RUN_ID_RULE}; got {shown}")
