"""A small JSON Schema checker for the subset pydantic and our OpenAPI document use.

``jsonschema`` is not a dependency of the project; this covers ``$ref``, ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``anyOf``,
``oneOf``, ``allOf``, ``enum``, ``const`` and numeric/length bounds.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    """The schema a local ``$ref`` (``#/a/b``) points at; KeyError if it dangles."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def errors(value: Any, schema: dict[str, Any], document: dict[str, Any], at: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``pointer: problem`` lines."""
    if "$ref" in schema:
        return errors(value, resolve(document, schema["$ref"]), document, at)
    found: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES[k](value) for k in kinds):
            return [f"{at or '/'}: {value!r:.60} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} != {schema['const']!r}")
    found += _bounds(value, schema, at)
    found += _combinators(value, schema, document, at)
    if isinstance(value, dict):
        found += _object(value, schema, document, at)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += errors(item, schema["items"], document, f"{at}/{index}")
    return found


def _bounds(value: Any, schema: dict[str, Any], at: str) -> list[str]:
    found = []
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{at}: {value} > {schema['maximum']}")
    least = schema.get("minLength", schema.get("minItems", 0))
    if isinstance(value, str | list) and len(value) < least:
        found.append(f"{at}: too short")
    return found


def _combinators(
    value: Any, schema: dict[str, Any], document: dict[str, Any], at: str
) -> list[str]:
    found = []
    for sub in schema.get("allOf", []):
        found += errors(value, sub, document, at)
    if "anyOf" in schema and all(errors(value, s, document, at) for s in schema["anyOf"]):
        found.append(f"{at}: matches no anyOf branch")
    if "oneOf" in schema:
        matching = sum(not errors(value, s, document, at) for s in schema["oneOf"])
        if matching != 1:
            found.append(f"{at}: matches {matching} oneOf branches, not 1")
    return found


def _object(
    value: dict[str, Any], schema: dict[str, Any], document: dict[str, Any], at: str
) -> list[str]:
    found = [f"{at}/{name}: required" for name in schema.get("required", []) if name not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            found += errors(item, properties[name], document, f"{at}/{name}")
        elif extra is False:
            found.append(f"{at}/{name}: not allowed")
        elif isinstance(extra, dict):
            found += errors(item, extra, document, f"{at}/{name}")
    return found
