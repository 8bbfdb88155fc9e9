"""Secrets in an http step: declared by reference, placed by ``${secret.NAME}``, never kept.

An http step declares ``secrets: {NAME: "<reference>"}`` (``shared.ports.secrets``)
and places them in header values, query values and body strings with the exact
template ``${secret.NAME}``. The value is resolved when the step runs and exists
only in the request sent: the step's recorded input shows the template, and any
copy of a value in what comes back (a service echoing a header, an error quoting
the query) is replaced by ``[secret:NAME]`` before it is stored, logged or streamed.

How: before the step's templates are rendered, each ``${secret.NAME}`` becomes a
marker that carries a nonce drawn for this one call, so the expression language
never sees the secret (``secret`` is no variable there) and no data rendered into
the request (an execution's input, say) can forge a marker. After rendering, the
markers become values in the request and templates again in the recorded input.
"""

from __future__ import annotations

import re
import secrets as _random
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from shared.errors import Issue
from shared.expressions import walk_strings

__all__ = [
    "SECRET_NAME",
    "SECRET_TEMPLATE",
    "Placement",
    "scrub",
    "secret_names",
]

SECRET_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
SECRET_TEMPLATE = re.compile(r"\$\{\s*secret\.(" + SECRET_NAME + r")\s*\}")
_ANY_SECRET_USE = re.compile(r"\$\{[^}]*\bsecret\b")
"""``secret`` inside any template: only the exact ``${secret.NAME}`` form is allowed."""
_MIN_SCRUB_LENGTH = 4
"""Shorter values are not scrubbed from responses: they would mangle ordinary text."""


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` with ``change`` applied to every string in it (keys stay as they are)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value


def secret_names(value: Any, path: str, declared: Mapping[str, str]) -> list[Issue]:
    """Problems with the secret templates in ``value`` (header, query or body values):
    a name not declared in ``secrets``, or ``secret`` used other than as ``${secret.NAME}``."""
    issues: list[Issue] = []
    for where, text in walk_strings(value, path):
        for match in SECRET_TEMPLATE.finditer(text):
            if match.group(1) not in declared:
                issues.append(
                    Issue(
                        "SECRET_UNDECLARED",
                        f"${{secret.{match.group(1)}}} is not declared in the step's secrets",
                        where,
                    )
                )
        if _ANY_SECRET_USE.search(SECRET_TEMPLATE.sub("", text)):
            issues.append(
                Issue(
                    "SECRET_TEMPLATE",
                    "a secret is placed only as the whole template ${secret.NAME}; it "
                    "cannot be part of an expression",
                    where,
                )
            )
    return issues


def without_secret_templates(value: Any) -> Any:
    """``value`` with every ``${secret.NAME}`` removed (to check the other templates)."""
    return _map_strings(value, lambda text: SECRET_TEMPLATE.sub("", text))


class Placement:
    """The secrets of one call: markers in, values out for the request, templates back
    for the record."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        nonce = _random.token_hex(8)
        self._open = f"\ue000{nonce}:"
        self._marker = re.compile(re.escape(self._open) + "(" + SECRET_NAME + ")\ue001")

    def mark(self, value: Any) -> Any:
        """``${secret.NAME}`` -> a marker that rendering leaves alone."""
        return _map_strings(
            value, lambda text: SECRET_TEMPLATE.sub(lambda m: f"{self._open}{m[1]}\ue001", text)
        )

    def reveal(self, value: Any) -> Any:
        """Markers -> the secrets' values: what is sent."""
        return _map_strings(value, lambda text: self._marker.sub(lambda m: self.values[m[1]], text))

    def redact(self, value: Any) -> Any:
        """Markers -> ``${secret.NAME}`` again: what is recorded."""
        return _map_strings(value, lambda text: self._marker.sub(r"${secret.\1}", text))

    def scrub(self, value: Any) -> Any:
        """Any copy of a value (an echo, an error message) -> ``[secret:NAME]``."""
        return scrub(value, self.values)


def scrub(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with every occurrence of a secret's value, as is or URL-encoded (a query
    quoted in an error), replaced by ``[secret:NAME]``."""
    found = sorted(
        {
            (name, form)
            for name, secret in values.items()
            if len(secret) >= _MIN_SCRUB_LENGTH
            for form in (secret, quote(secret, safe=""), quote_plus(secret))
        },
        key=lambda item: -len(item[1]),
    )
    if not found:
        return value

    def change(text: str) -> str:
        for name, secret in found:
            if secret in text:
                text = text.replace(secret, f"[secret:{name}]")
        return text

    return _map_strings(value, change)
