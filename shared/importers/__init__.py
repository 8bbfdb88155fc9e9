"""Importers: Google Cloud Workflows and AWS Step Functions definitions -> ours, and back.

``translate(format, text_or_obj, name)`` answers an ``ImportResult``: the translated
definition, its validation issues, and warnings/unsupported constructs addressed in
the source document. Nothing is evaluated (expressions are translated as text) and
nothing is stored here; the API layer saves ``result.definition`` only when
``result.valid`` (or as the caller asks).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from shared.engine.steps import StepRegistry
from shared.engine.validation import validate_definition
from shared.errors import DefinitionInvalid, InputInvalid, Issue
from shared.importers.result import (
    MAX_OUR_STEPS,
    Collector,
    Finding,
    ImportResult,
    Unsupported,
    load_source,
)

Format = Literal["gcw", "asl"]
FORMATS = ("gcw", "asl")
_LOOP_PATH = re.compile(r"^/steps/(\d+)/nextSteps$")

__all__ = ["FORMATS", "Finding", "ImportResult", "export_asl", "export_gcw", "translate"]


def translate(
    format: str, text_or_obj: Any, name: str | None = None, registry: StepRegistry | None = None
) -> ImportResult:
    """Translate a source document into our definition (never evaluates anything).

    Raises:
        InputInvalid: unknown format, or the source is not a bounded JSON/YAML document
            of that format (codes ``IMPORT_*``).
    """
    if format not in FORMATS:
        raise InputInvalid(
            f"unknown import format {format!r}; use gcw or asl", code="IMPORT_FORMAT"
        )
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= 200):
        raise InputInvalid("name must be 1 to 200 characters", code="IMPORT_NAME", path="/name")
    source = load_source(text_or_obj, allow_list=format == "gcw")
    findings = Collector()
    try:
        if format == "gcw":
            from shared.importers.gcw import GcwTranslator

            definition = GcwTranslator(source, name, findings).translate()
        else:
            from shared.importers.asl import AslTranslator

            definition = AslTranslator(source, name, findings).translate()
    except Unsupported as exc:
        raise InputInvalid(exc.message, code=exc.code) from None
    except RecursionError:
        raise InputInvalid("source is nested too deeply", code="IMPORT_TOO_DEEP") from None
    issues = _validate(definition, registry)
    return ImportResult(definition, findings.warnings, findings.unsupported, issues)


def _validate(definition: dict[str, Any], registry: StepRegistry | None) -> list[Issue]:
    """Our validation's issues (bounding loops that came from backward jumps first)."""
    if registry is None:
        from shared.steps import default_registry

        registry = default_registry()
    if len(definition.get("steps", [])) > MAX_OUR_STEPS:
        return [
            Issue(
                "TOO_MANY_STEPS",
                f"the translation has {len(definition['steps'])} steps; at most {MAX_OUR_STEPS}",
                "/steps",
            )
        ]
    for _ in range(20):
        try:
            validate_definition(definition, registry)
            return []
        except DefinitionInvalid as exc:
            loops = [m for i in exc.issues if (m := _LOOP_PATH.match(i.path))]
            if not loops:
                return list(exc.issues)
            for match in loops:
                definition["steps"][int(match.group(1))]["maxIterations"] = 10_000
    return [Issue("UNBOUNDED_LOOP", "loops could not be bounded", "/steps")]


def export_gcw(definition: Any) -> ImportResult:
    """Our definition -> Cloud Workflows (the subset that maps back)."""
    from shared.importers.export import to_gcw

    return to_gcw(definition)


def export_asl(definition: Any) -> ImportResult:
    """Our definition -> Step Functions ASL (the subset that maps back)."""
    from shared.importers.export import to_asl

    return to_asl(definition)
