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

_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
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
    if not isinstance(schema, dict):
        return [Issue("SCHEMA_INVALID", "a schema must be an object", path)]
    issues = [
        Issue("SCHEMA_UNSUPPORTED", f"keyword {key!r} is not supported", f"{path}/{key}")
        for key in schema
        if key not in _KEYWORDS
    ]
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind is not None and kind not in _TYPES:
            issues.append(Issue("SCHEMA_INVALID", f"unknown type {kind!r}", f"{path}/type"))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        issues.append(Issue("SCHEMA_INVALID", "properties must be an object", f"{path}/properties"))
    else:
        for name, sub in properties.items():
            issues += check_schema(sub, f"{path}/properties/{name}")
    if "items" in schema:
        issues += check_schema(schema["items"], f"{path}/items")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        issues.append(Issue("SCHEMA_INVALID", "required must list names", f"{path}/required"))
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
    return isinstance(value, (int, float))  # number


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` breaks ``schema``: ``"<pointer>: <problem>"`` lines."""
    kinds = schema.get("type")
    if kinds is not None:
        options = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(kind, value) for kind in options):
            return [f"{path or '/'}: expected {'/'.join(options)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path or '/'}: not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path or '/'}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path or '/'}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path or '/'}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path or '/'}: above {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path or '/'}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path or '/'}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += validate(item, schema["items"], f"{path}/{index}")
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}/{name}: required")
        for name, item in value.items():
            if name in properties:
                errors += validate(item, properties[name], f"{path}/{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}/{name}: not allowed")
    return errors
