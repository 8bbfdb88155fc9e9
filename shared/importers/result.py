"""What an import answers: our definition, plus what did not translate exactly.

``warnings`` are constructs translated with a documented difference; ``unsupported`` are
constructs left out or replaced by a marked placeholder. Each has a stable code, a
message and a JSON pointer into the SOURCE document (not into our definition).
Validation problems of the translated definition are in ``issues`` (pointers into it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.errors import InputInvalid, Issue, json_pointer
from shared.models.safe_yaml import MAX_YAML_BYTES, MAX_YAML_DEPTH, load_yaml_documents

MAX_SOURCE_BYTES = MAX_YAML_BYTES
"""Largest source text (the REST edge caps bodies at the same size)."""
MAX_SOURCE_DEPTH = MAX_YAML_DEPTH
MAX_SOURCE_NODES = 50_000
"""Most mappings, sequences and scalars a source document may hold."""
MAX_EMITTED_STEPS = 2000
"""A translation stops (IMPORT_TOO_MANY_STEPS) past this many steps: subworkflows are
inlined at each call, so a few calling each other could otherwise multiply without end."""
MAX_OUR_STEPS = 500
"""Our definitions hold at most this many steps (``validation.MAX_STEPS``)."""


@dataclass(frozen=True)
class Finding:
    """A warning or an unsupported construct, addressed in the source document."""

    code: str
    message: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "path": self.path}


@dataclass
class ImportResult:
    definition: dict[str, Any]
    """The translated definition (our JSON shape, camelCase)."""
    warnings: list[Finding] = field(default_factory=list)
    unsupported: list[Finding] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    """Why the definition does not pass our validation (empty when it does)."""

    @property
    def valid(self) -> bool:
        return not self.issues

    @property
    def clean(self) -> bool:
        return self.valid and not self.warnings and not self.unsupported

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "valid": self.valid,
            "issues": [i.to_dict() for i in self.issues],
            "warnings": [w.to_dict() for w in self.warnings],
            "unsupported": [u.to_dict() for u in self.unsupported],
        }


class Unsupported(Exception):
    """Raised inside a translator for a construct it does not translate."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Collector:
    """Findings of one import; also builds unique step ids."""

    def __init__(self) -> None:
        self.warnings: list[Finding] = []
        self.unsupported: list[Finding] = []
        self._ids: set[str] = set()

    def warn(self, code: str, message: str, path: str) -> None:
        self.warnings.append(Finding(code, message, path))

    def unsupported_(self, code: str, message: str, path: str) -> None:
        self.unsupported.append(Finding(code, message, path))

    def new_id(self, hint: str) -> str:
        """A step id from ``hint``, valid for our pattern and unique in this import."""
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", hint)[:56] or "step"
        if not re.match(r"[A-Za-z_]", base):
            base = "s_" + base[:54]
        candidate, n = base, 1
        while candidate in self._ids:
            n += 1
            candidate = f"{base}_{n}"
        self._ids.add(candidate)
        return candidate


def pointer(*parts: object) -> str:
    return json_pointer(*parts)


def _bounded(value: Any) -> None:
    """Refuse documents nested deeper than the API accepts or with too many nodes."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_SOURCE_NODES:
            raise InputInvalid(
                f"source document holds more than {MAX_SOURCE_NODES} values",
                code="IMPORT_TOO_LARGE",
            )
        if depth > MAX_SOURCE_DEPTH:
            raise InputInvalid(
                f"source document is nested deeper than {MAX_SOURCE_DEPTH} levels",
                code="IMPORT_TOO_DEEP",
            )
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def load_source(text_or_obj: Any, allow_list: bool = False) -> Any:
    """The source document from text (JSON or YAML, safe loader) or an already-parsed
    object, bounded in size and nesting. Raises ``InputInvalid`` with a stable code."""
    if isinstance(text_or_obj, bytes):
        try:
            text_or_obj = text_or_obj.decode("utf-8")
        except UnicodeDecodeError:
            raise InputInvalid("source is not UTF-8 text", code="IMPORT_NOT_TEXT") from None
    if isinstance(text_or_obj, str):
        size = len(text_or_obj.encode("utf-8", "surrogatepass"))
        if size > MAX_SOURCE_BYTES:
            raise InputInvalid(
                f"source of {size} bytes exceeds {MAX_SOURCE_BYTES}", code="IMPORT_TOO_LARGE"
            )
        try:
            if text_or_obj.lstrip().startswith(("{", "[")):
                value = json.loads(text_or_obj)
            else:
                documents = load_yaml_documents(text_or_obj)
                if len(documents) != 1:
                    raise InputInvalid(
                        f"source holds {len(documents)} documents, not one",
                        code="IMPORT_NOT_ONE_DOCUMENT",
                    )
                value = documents[0]
        except RecursionError:
            raise InputInvalid("source is nested too deeply", code="IMPORT_TOO_DEEP") from None
        except InputInvalid as exc:
            limit = exc.details.get("limit")
            code = {"yaml_depth": "IMPORT_TOO_DEEP", "yaml_size": "IMPORT_TOO_LARGE"}.get(
                str(limit), "IMPORT_YAML_REFUSED" if limit else exc.code
            )
            raise InputInvalid(exc.message, code=code, details=exc.details) from None
        except (ValueError, yaml.YAMLError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputInvalid(
                f"source is not valid JSON or YAML: {message}", code="IMPORT_SYNTAX"
            ) from None
    else:
        value = text_or_obj
    _bounded(value)
    if not isinstance(value, Mapping) and not (allow_list and isinstance(value, list)):
        raise InputInvalid(
            f"source must hold an object, not {type(value).__name__}", code="IMPORT_NOT_OBJECT"
        )
    return value
