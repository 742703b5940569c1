"""Run parameters: typed (a subset of JSON Schema), with defaults, checked when a run is
triggered and resolved when its tasks run.

A DAG's params are kept as plain JSON in its structure, {name: schema}, so the webserver and
the CLI check a trigger's conf without importing the DAG file. The schema keys understood:
`type` (string, integer, number, boolean, array, object, null, or a list of them), `enum`,
`minimum`, `maximum`, `minLength`, `maxLength`, `pattern`, `description`, `default`. A
param with no default must be given at trigger time. A conf may carry keys that are not
params (as in Airflow); they are passed on unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from haflow.errors import InvalidRequest

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
KEYS = frozenset(
    {
        "type",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "description",
        "default",
        "title",
    }
)


class InvalidParam(InvalidRequest):
    """A value that does not fit its param; `field` names the param."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` does not fit `schema`, or None when it does."""
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(n, value) for n in names):
            return f"must be of type {' or '.join(names)}, got {value!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {schema['enum']!r}, got {value!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _bounds(schema, value)
    if isinstance(value, str):
        return _text(schema, value)
    return None


def _is(type_name: str, value: Any) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False  # JSON's true is no number
    return isinstance(value, TYPES[type_name])


def _bounds(schema: Mapping[str, Any], value: float) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"must be >= {schema['minimum']}, got {value!r}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"must be <= {schema['maximum']}, got {value!r}"
    return None


def _text(schema: Mapping[str, Any], value: str) -> str | None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"must be at least {schema['minLength']} characters long"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"must be at most {schema['maxLength']} characters long"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"must match {schema['pattern']!r}, got {value!r}"
    return None


def resolve(params: Mapping[str, Mapping[str, Any]], conf: Mapping[str, Any]) -> dict[str, Any]:
    """Every param's value for a run triggered with `conf`: the conf's, else the default.
    InvalidParam naming the first param whose value does not fit, or that has no value."""
    out: dict[str, Any] = {}
    for name, schema in params.items():
        if name in conf:
            value = conf[name]
        elif "default" in schema:
            value = schema["default"]
        else:
            raise InvalidParam(f"param {name!r} is required (it has no default)", name)
        why = problem(schema, value)
        if why is not None:
            raise InvalidParam(f"param {name!r} {why}", name)
        out[name] = value
    return out
