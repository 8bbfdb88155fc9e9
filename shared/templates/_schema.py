"""The JSON Schema subset template parameters are declared in, checked and applied.

Keywords: ``type`` (one or a list of object, array, string, number, integer, boolean,
null), ``properties``, ``required``, ``additionalProperties`` (bool), ``items``,
``enum``, ``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``,
``minItems``/``maxItems``, and the annotations ``title``, ``description``, ``default``
and ``examples``. A template using any other keyword fails to load: a keyword that is
silently ignored would be a check that silently does not happen.

Every problem is an ``Issue`` whose path is a JSON pointer into the parameters.
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import Issue, json_pointer, pointer_token

_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
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
    if not isinstance(schema, dict):
        return [f"{path or '/'}: a schema must be an object"]
    problems = [f"{path}/{key}: unsupported keyword" for key in schema if key not in _KEYWORDS]
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind is not None and kind not in _TYPES:
            problems.append(f"{path}/type: unknown type {kind!r}")
    for name, sub in (schema.get("properties") or {}).items():
        problems += schema_problems(sub, f"{path}/properties/{pointer_token(name)}")
    if "items" in schema:
        problems += schema_problems(schema["items"], f"{path}/items")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError):
            problems.append(f"{path}/pattern: not a regular expression")
    return problems


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
    return isinstance(value, int | float)


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
            return [Issue("WRONG_TYPE", f"expected {' or '.join(options)}", path)]
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
                issues.append(Issue("UNKNOWN_PARAMETER", "not allowed here", where))
    return issues


__all__ = ["schema_problems", "validate"]
