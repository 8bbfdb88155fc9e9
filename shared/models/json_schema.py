"""The JSON Schema subset the project checks values against: llm structured output
(``shared.ai.schema``) and template parameters (``shared.templates._schema``).

Keywords: ``type`` (one or a list of object, array, string, number, integer, boolean,
null), ``properties``, ``required``, ``additionalProperties`` (bool), ``items``,
``enum``, ``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``,
``minItems``/``maxItems``, and annotations. Each user says which keywords it accepts
(``check_schema``); a schema using another is refused rather than silently half-checked.
Every problem is an ``Issue`` at its JSON pointer.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from shared.errors import Issue, json_pointer

__all__ = ["TYPES", "check_schema", "validate"]

TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


def check_schema(schema: Any, path: str, keywords: Collection[str]) -> list[Issue]:
    """Problems of a schema (keywords outside ``keywords``, bad types), with pointers."""
    if not isinstance(schema, dict):
        return [Issue("SCHEMA_INVALID", "a schema must be an object", path)]
    issues = [
        Issue("SCHEMA_UNSUPPORTED", f"keyword {key!r} is not supported", path + json_pointer(key))
        for key in schema
        if key not in keywords
    ]
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind is not None and kind not in TYPES:
            issues.append(Issue("SCHEMA_INVALID", f"unknown type {kind!r}", f"{path}/type"))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        issues.append(Issue("SCHEMA_INVALID", "properties must be an object", f"{path}/properties"))
    else:
        for name, sub in properties.items():
            issues += check_schema(sub, f"{path}/properties{json_pointer(name)}", keywords)
    if "items" in schema:
        issues += check_schema(schema["items"], f"{path}/items", keywords)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        issues.append(Issue("SCHEMA_INVALID", "required must list names", f"{path}/required"))
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError):
            issues.append(Issue("SCHEMA_INVALID", "not a regular expression", f"{path}/pattern"))
    return issues


def _is(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, int | float)  # number


def _scalar_issues(value: Any, schema: dict[str, Any], path: str) -> list[Issue]:
    issues: list[Issue] = []
    if "enum" in schema and value not in schema["enum"]:
        issues.append(Issue("NOT_IN_ENUM", f"not one of {schema['enum']}", path))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            issues.append(Issue("TOO_SHORT", f"shorter than {schema['minLength']}", path))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            issues.append(Issue("TOO_LONG", f"longer than {schema['maxLength']}", path))
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            issues.append(Issue("PATTERN_MISMATCH", f"does not match {schema['pattern']}", path))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            issues.append(Issue("TOO_SMALL", f"below {schema['minimum']}", path))
        if "maximum" in schema and value > schema["maximum"]:
            issues.append(Issue("TOO_LARGE", f"above {schema['maximum']}", path))
    return issues


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[Issue]:
    """Where ``value`` breaks ``schema``, each problem at its JSON pointer."""
    kinds = schema.get("type")
    if kinds is not None:
        options = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(kind, value) for kind in options):
            return [Issue("WRONG_TYPE", f"expected {'/'.join(options)}", path)]
    issues = _scalar_issues(value, schema, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            issues.append(Issue("TOO_FEW_ITEMS", f"fewer than {schema['minItems']} items", path))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            issues.append(Issue("TOO_MANY_ITEMS", f"more than {schema['maxItems']} items", path))
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                issues += validate(item, schema["items"], f"{path}/{index}")
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                issues.append(Issue("REQUIRED", "required", path + json_pointer(name)))
        for name, item in value.items():
            where = path + json_pointer(name)
            if name in properties:
                issues += validate(item, properties[name], where)
            elif schema.get("additionalProperties") is False:
                issues.append(Issue("UNKNOWN_PARAMETER", "not allowed", where))
    return issues
