"""The one YAML loader for anything a user sends: REST bodies, CLI and dev-server files.

``yaml.safe_load`` expands aliases, so a few hundred bytes of nested anchors (the
"billion laughs") become gigabytes of objects. Definitions have no use for anchors,
so this loader refuses them outright, before anything is built, and caps the text's
size and the documents' nesting. Every refusal is an ``InputInvalid`` (INVALID_INPUT).
"""

from __future__ import annotations

from typing import Any

import yaml

from shared.errors import InputInvalid

MAX_YAML_BYTES = 1024 * 1024
"""Largest YAML text accepted (the REST edge caps bodies at the same size)."""
MAX_YAML_DEPTH = 100
"""Deepest nesting of mappings and sequences (the REST edge's JSON limit)."""

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "BoundedSafeLoader", "load_yaml_documents"]


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors or aliases, and with a nesting limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise InputInvalid(
                "YAML aliases and anchors (& and *) are not accepted" + _where(event),
                details={"limit": "yaml_aliases"},
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise InputInvalid(
                    f"YAML is nested deeper than {MAX_YAML_DEPTH} levels" + _where(event),
                    details={"limit": "yaml_depth"},
                )
            node: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node


def load_yaml_documents(text: str) -> list[Any]:
    """Every non-empty document of ``text``.

    Raises:
        InputInvalid: the text is too large, uses aliases/anchors or nests too deeply.
        yaml.YAMLError: the text is not YAML (callers word their own message).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise InputInvalid(
            f"YAML text of {size} bytes exceeds {MAX_YAML_BYTES}", details={"limit": "yaml_size"}
        )
    try:
        return [d for d in yaml.load_all(text, Loader=BoundedSafeLoader) if d is not None]
    except RecursionError:
        raise InputInvalid(
            f"YAML is nested deeper than {MAX_YAML_DEPTH} levels", details={"limit": "yaml_depth"}
        ) from None
