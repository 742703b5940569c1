"""`Param`: a typed run parameter of a DAG, as in Airflow (`Param(5, type="integer",
minimum=1)`); its schema is checked here, when the DAG file is parsed, and kept with the
DAG's structure for the checks at trigger time (`haflow.core.params`)."""

from __future__ import annotations

import json
from typing import Any

from haflow.core.params import KEYS, TYPES, problem
from haflow.errors import DagDefinitionError

_UNSET: Any = object()


class Param:
    """A run parameter: a default (none: it must be given at trigger time) and JSON Schema
    keywords (`type`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`),
    with a `description` shown in the trigger form."""

    def __init__(self, default: Any = _UNSET, description: str = "", **schema: Any) -> None:
        self.default = default
        self.description = description
        self.schema_keys = dict(schema)

    def schema(self, where: str) -> dict[str, Any]:
        """The JSON schema kept for it; DagDefinitionError naming `where` when it is wrong."""
        unknown = set(self.schema_keys) - KEYS
        if unknown:
            raise DagDefinitionError(f"{where}: unknown schema keywords {sorted(unknown)}")
        types = self.schema_keys.get("type")
        names = [types] if isinstance(types, str) else list(types or [])
        bad = [n for n in names if n not in TYPES]
        if bad:
            raise DagDefinitionError(f"{where}: unknown type {bad}; use one of {sorted(TYPES)}")
        out = dict(self.schema_keys)
        if self.description:
            out["description"] = self.description
        if self.default is not _UNSET:
            why = problem(out, self.default)
            if why is not None:
                raise DagDefinitionError(f"{where}: the default {why}")
            out["default"] = self.default
        try:
            json.dumps(out)
        except (TypeError, ValueError):
            raise DagDefinitionError(f"{where}: default and schema must be JSON") from None
        return out


def param_schemas(params: object, where: str) -> dict[str, dict[str, Any]]:
    """A DAG's `params` argument ({name: Param or plain default}) as {name: schema}."""
    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise DagDefinitionError(f"{where}: params must be a dict of names to Param or values")
    return {
        name: (value if isinstance(value, Param) else Param(value)).schema(
            f"{where}, param {name!r}"
        )
        for name, value in params.items()
    }
