"""The one check of user-supplied identifiers, shared by every entry point (CLI, REST API, web
pages) through the repository: an id that passes is safe in a URL path, a log line and its
column (haflow.core.limits). Patterns are matched whole (`fullmatch`): `$` would let a
trailing newline through."""

from __future__ import annotations

import re

from haflow.core.limits import ID_CHARS, RESERVED_RUN_ID_PREFIXES
from haflow.errors import InvalidRequest

RUN_ID = re.compile(rf"[A-Za-z0-9_.:+\-]{{1,{ID_CHARS}}}")
RUN_ID_RULE = f"1 to {ID_CHARS} characters of letters, digits and _ . : + -"


NAME = re.compile(rf"[A-Za-z0-9_.\-]{{1,{ID_CHARS}}}")
NAME_RULE = f"1 to {ID_CHARS} characters of letters, digits and _ . -"


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def check_name(name: object, what: str) -> str:
    """`name` if it is a valid name of a pool, a variable or a connection (`what`: "a pool's
    name"), else InvalidRequest naming the rule."""
    if isinstance(name, str) and NAME.fullmatch(name):
        return name
    raise InvalidRequest(f"{what} must be {NAME_RULE}; got {_shown(name)}")


def check_pool_name(name: object) -> str:
    return check_name(name, "a pool's name")


def check_text(text: object, field: str, limit: int = 10000) -> str:
    """Free text a user gives (a description): a string of at most `limit` characters that
    every metastore can store (no NUL, no lone surrogate), else InvalidRequest naming it."""
    if isinstance(text, str) and len(text) <= limit and "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    raise InvalidRequest(f"{field} must be text of at most {limit} characters, without NUL")


def check_run_id(run_id: object, field: str = "run_id") -> str:
    """`run_id` if it is a valid run id, else InvalidRequest naming `field` and the rule."""
    if isinstance(run_id, str) and RUN_ID.fullmatch(run_id):
        return run_id
    raise InvalidRequest(f"{field} must be {RUN_ID_RULE}; got {_shown(run_id)}")


def check_manual_run_id(run_id: object, field: str = "run_id") -> str:
    """`run_id` if a manual run may take it: a valid run id outside the prefixes the
    scheduler gives its own runs (Airflow reserves the same)."""
    checked = check_run_id(run_id, field)
    for prefix in RESERVED_RUN_ID_PREFIXES:
        if checked.startswith(prefix):
            raise InvalidRequest(
                f"{field} must not start with {prefix!r}: the scheduler names its own runs so "
                f"(reserved: {', '.join(RESERVED_RUN_ID_PREFIXES)}); got {_shown(checked)}"
            )
    return checked
