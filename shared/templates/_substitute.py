"""Whole-value placeholders: ``"{{param: NAME}}"`` replaced by the parameter's JSON value.

A placeholder is a string value that is exactly ``{{param: NAME}}`` (spaces allowed
inside the braces). It is replaced by the parameter's value as it is (a number stays a
number, an object an object); nothing is spliced into text, the result is never parsed
or rendered again, and placeholders inside parameter values are plain text.

Where a placeholder may stand decides what its value may hold, because some fields of
a definition are code (CEL conditions, ``${...}`` templates the engine renders, secret
references the http step resolves):

* data sites: ``/variables/...``, ``/description`` and ``/tags/N``. The engine never
  renders initial variables; a step reads them through ``${vars.x}``, whose result
  is spliced as text and not evaluated again. Any JSON value may go there.
* name sites: ``/trigger/cron``, ``/trigger/timezone``, ``/trigger/topic`` and a step's
  ``config/topic`` or ``config/event``: read as plain names, never rendered. A string of
  ``NAME_CHARACTERS`` only.
* every other place: a number, a boolean or null, nothing that can carry text.

Templates are checked against these rules when they load (``check_sites``); values are
checked again when substituted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from shared.errors import Issue, pointer_token

PLACEHOLDER = re.compile(r"^\{\{\s*param:\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}$")
_LOOSE = re.compile(r"\{\{\s*param\s*:")
NAME_CHARACTERS = re.compile(r"^[A-Za-z0-9 _.:/*,+~%\-]{1,200}$")
"""What a value at a name site may hold: cron fields, time zones, topic and event names."""

_NAME_SITES = (
    re.compile(r"^/trigger/(cron|timezone|topic)$"),
    re.compile(r"^/steps/\d+/config/(topic|event)$"),
)
_DATA_SITES = (re.compile(r"^/variables/"), re.compile(r"^/description$"), re.compile(r"^/tags/"))

DATA, NAME, NUMBER = "data", "name", "number"


def site_kind(path: str) -> str:
    """Which values the place at ``path`` (a JSON pointer into the definition) may take."""
    if any(site.match(path) for site in _DATA_SITES):
        return DATA
    if any(site.match(path) for site in _NAME_SITES):
        return NAME
    return NUMBER


def placeholders(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(pointer, parameter name)`` of the template definition ``value``."""
    if isinstance(value, str):
        match = PLACEHOLDER.match(value)
        if match is not None:
            yield path, match.group(1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from placeholders(item, f"{path}/{pointer_token(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from placeholders(item, f"{path}/{index}")


def stray_markers(value: Any, path: str = "") -> Iterator[str]:
    """Pointers of strings (or keys) that mention ``{{param:`` without being a placeholder."""
    if isinstance(value, str):
        if _LOOSE.search(value) and not PLACEHOLDER.match(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}/{pointer_token(key)}"
            if _LOOSE.search(str(key)):
                yield where
            yield from stray_markers(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from stray_markers(item, f"{path}/{index}")


def allowed_types(kind: str) -> frozenset[str]:
    """JSON Schema types a parameter placed at a ``kind`` site may declare."""
    if kind == DATA:
        return frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
    if kind == NAME:
        return frozenset({"string"})
    return frozenset({"number", "integer", "boolean", "null"})


def value_issue(kind: str, value: Any, param_path: str) -> Issue | None:
    """Why ``value`` may not stand at a ``kind`` site, or None."""
    if kind == DATA:
        return None
    if kind == NAME:
        if isinstance(value, str) and NAME_CHARACTERS.match(value):
            return None
        return Issue("NOT_A_NAME", f"must match {NAME_CHARACTERS.pattern}", param_path)
    if value is None or isinstance(value, bool | int | float):
        return None
    return Issue("NOT_A_NUMBER", "must be a number or a boolean here", param_path)


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """A copy of ``value`` with every placeholder replaced by its parameter's value.

    One pass over the template only: the inserted values are copied, not visited.
    """
    if isinstance(value, str):
        match = PLACEHOLDER.match(value)
        return _copy(values[match.group(1)]) if match is not None else value
    if isinstance(value, dict):
        return {key: substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


__all__ = [
    "DATA",
    "NAME",
    "NAME_CHARACTERS",
    "NUMBER",
    "allowed_types",
    "placeholders",
    "site_kind",
    "stray_markers",
    "substitute",
    "value_issue",
]
