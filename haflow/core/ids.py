"""The one check of user-supplied identifiers, shared by every entry point (CLI, REST API, web
pages) through the repository: an id that passes is safe in a URL path, a log line and a
`String(250)` column."""

from __future__ import annotations

import re

from haflow.errors import InvalidRequest

RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,250}$")
RUN_ID_RULE = "1 to 250 characters of letters, digits and _ . : + -"


NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
NAME_RULE = "1 to 250 characters of letters, digits and _ . -"


def check_name(name: object, what: str) -> str:
    """`name` if it is a valid name of a pool, a variable or a connection (`what`: "a pool's
    name"), else InvalidRequest naming the rule."""
    if isinstance(name, str) and NAME.match(name):
        return name
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
    raise InvalidRequest(f"{what} must be {NAME_RULE}; got {shown}")


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
    if isinstance(run_id, str) and RUN_ID.match(run_id):
        return run_id
    shown = repr(run_id) if len(repr(run_id)) <= 60 else repr(run_id)[:57] + "..."
    raise InvalidRequest(f"{field} must be {RUN_ID_RULE}; got {shown}")
