"""The JSON Schema subset template parameters are declared in (``shared.models.json_schema``
with ``pattern`` and the annotations ``default`` and ``examples``). A template using
any other keyword fails to load: a keyword that is silently ignored would be a check
that silently does not happen.

Every problem is an ``Issue`` whose path is a JSON pointer into the parameters.
"""

from __future__ import annotations

from typing import Any

from shared.models import json_schema
from shared.models.json_schema import validate

__all__ = ["schema_problems", "validate"]

_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "title",
        "description",
        "default",
        "examples",
    }
)


def schema_problems(schema: Any, path: str = "") -> list[str]:
    """What is wrong with a template's parameter schema (authoring errors)."""
    return [
        f"{i.path or '/'}: {i.message}" for i in json_schema.check_schema(schema, path, _KEYWORDS)
    ]
