"""JSON parsing that cannot take the service down: nesting deeper than ``MAX_DEPTH``
(or deep enough to exhaust the parser's recursion) is a ``json.JSONDecodeError``, which
every edge answers 400, never a RecursionError and a 500."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 100
"""Deepest nesting of objects and arrays a body may have."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes | str) -> Any:
    """JSON that is not nested too deeply; ``json.JSONDecodeError`` otherwise."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0) from None
    if too_deep(value):
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0)
    return value
