"""A small JSON Schema subset for llm structured output, checked at save and at run time.

Supported keywords: ``type`` (object, array, string, number, integer, boolean, null,
or a list of them), ``properties``, ``required``, ``additionalProperties`` (bool),
``items``, ``enum``, ``minLength``/``maxLength``, ``minimum``/``maximum``,
``minItems``/``maxItems``, ``description`` and ``title``. Anything else is refused
when the definition is saved, rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from shared.errors import Issue
from shared.models import json_schema

_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "description",
    "title",
}


def check_schema(schema: Any, path: str) -> list[Issue]:
    """Problems of a schema (unknown keywords, bad types) with JSON pointers."""
    return json_schema.check_schema(schema, path, _KEYWORDS)


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` breaks ``schema``: ``"<pointer>: <problem>"`` lines (what the
    model is told when its structured output does not fit)."""
    return [f"{i.path or '/'}: {i.message}" for i in json_schema.validate(value, schema, path)]
