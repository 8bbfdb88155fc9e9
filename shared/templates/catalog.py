"""The template gallery: one YAML file per template in ``gallery/``, loaded once.

A template file holds ``id``, ``name``, ``description``, ``tags``, ``parameters`` (a
JSON Schema object in the subset of ``_schema``, each property with a ``default``,
and an ``examples`` list whose first entry is the example the tests run) and
``definition``: a workflow definition whose values may be ``{{param: NAME}}``
placeholders (``_substitute``). A template that breaks these rules fails to load,
so the gallery test catches it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.engine.validation import parse_document
from shared.errors import DefinitionInvalid, Issue, NotFound
from shared.templates import _schema
from shared.templates._substitute import (
    allowed_types,
    placeholders,
    site_kind,
    stray_markers,
    substitute,
    value_issue,
)

GALLERY = Path(__file__).resolve().parent / "gallery"
"""Where the template files are."""
RECORDINGS = Path(__file__).resolve().parent / "recordings"
"""Model turns the llm steps of templates replay offline (``<id>.recording.json``)."""
MAX_PARAMETERS_BYTES = 32 * 1024
"""Largest parameters object (as JSON) an instantiation takes."""
MAX_PARAMETERS_DEPTH = 8


class TemplateNotFound(NotFound):
    """No template has this id (404)."""

    code = "TEMPLATE_NOT_FOUND"


class TemplateParamsInvalid(DefinitionInvalid):
    """The parameters do not fit the template's schema (400); ``issues`` point into them."""

    code = "TEMPLATE_PARAMS_INVALID"


class TemplateBroken(Exception):
    """A gallery file breaks the template rules (a bug of the gallery, not of a caller)."""


@dataclass(frozen=True)
class Template:
    """One parameterised workflow template."""

    id: str
    name: str
    description: str
    tags: list[str]
    parameters: dict[str, Any]
    """JSON Schema of the parameters object (with defaults and ``examples``)."""
    definition: dict[str, Any] = field(repr=False)
    """The definition with ``{{param: NAME}}`` placeholders."""

    @property
    def example(self) -> dict[str, Any]:
        """The first of the schema's ``examples``."""
        examples = self.parameters.get("examples") or [{}]
        return dict(examples[0])

    def summary(self) -> dict[str, Any]:
        """What a listing shows: id, name, description, tags, the parameters schema."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "parameters": self.parameters,
        }

    def to_dict(self) -> dict[str, Any]:
        """The summary and the definition with its placeholders."""
        return {**self.summary(), "definition": self.definition}


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _check(template: Template) -> list[str]:
    """Authoring problems of a template (empty when it may be served)."""
    schema = template.parameters
    problems = _schema.schema_problems(schema, "/parameters")
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        problems.append("/parameters: must be a closed object schema")
    properties: dict[str, Any] = schema.get("properties", {})
    for name, sub in properties.items():
        if "default" not in sub and name not in schema.get("required", []):
            problems.append(f"/parameters/properties/{name}: needs a default or to be required")
    for example in schema.get("examples") or []:
        problems += [f"example {i.path}: {i.message}" for i in _schema.validate(example, schema)]
    problems += [f"/definition{p}: stray placeholder" for p in stray_markers(template.definition)]
    for path, name in placeholders(template.definition):
        declared = properties.get(name)
        if declared is None:
            problems.append(f"/definition{path}: unknown parameter {name!r}")
            continue
        kinds = declared.get("type")
        kinds = set(kinds if isinstance(kinds, list) else [kinds])
        if not kinds or not kinds <= allowed_types(site_kind(path)):
            problems.append(f"/definition{path}: {name!r} may not be {kinds} here")
    return problems


def load_template(path: Path) -> Template:
    """Read and check one gallery file."""
    raw = parse_document(path.read_text(encoding="utf-8"), path.name)
    template = Template(
        id=str(raw["id"]),
        name=str(raw["name"]),
        description=str(raw["description"]),
        tags=[str(tag) for tag in raw.get("tags", [])],
        parameters=dict(raw["parameters"]),
        definition=dict(raw["definition"]),
    )
    problems = _check(template)
    if template.id != path.stem:
        problems.append(f"id {template.id!r} is not the file name {path.stem!r}")
    if problems:
        raise TemplateBroken(f"{path.name}: " + "; ".join(problems))
    return template


@lru_cache(maxsize=1)
def _gallery() -> dict[str, Template]:
    templates = (load_template(path) for path in sorted(GALLERY.glob("*.yaml")))
    return {template.id: template for template in templates}


def list_templates() -> list[Template]:
    """Every template of the gallery, by id."""
    return list(_gallery().values())


def get_template(template_id: str) -> Template:
    """The template ``template_id``; TEMPLATE_NOT_FOUND when there is none."""
    template = _gallery().get(template_id)
    if template is None:
        raise TemplateNotFound(f"no template {template_id[:100]!r}", path="/id")
    return template


def _bounded(parameters: Any) -> None:
    """Refuse what is too large or deep before looking inside."""
    if not isinstance(parameters, dict):
        raise TemplateParamsInvalid([Issue("WRONG_TYPE", "parameters must be an object", "")])
    try:
        size = len(json.dumps(parameters).encode())
    except (TypeError, ValueError) as exc:
        raise TemplateParamsInvalid([Issue("WRONG_TYPE", f"not JSON: {exc}", "")]) from exc
    if size > MAX_PARAMETERS_BYTES:
        message = f"{size} bytes exceed {MAX_PARAMETERS_BYTES}"
        raise TemplateParamsInvalid([Issue("PARAMETERS_TOO_LARGE", message, "")])
    if _depth(parameters) > MAX_PARAMETERS_DEPTH:
        message = f"nested deeper than {MAX_PARAMETERS_DEPTH}"
        raise TemplateParamsInvalid([Issue("PARAMETERS_TOO_DEEP", message, "")])


def resolve_parameters(template: Template, parameters: Any) -> dict[str, Any]:
    """The parameters with defaults filled in, checked against the schema and the sites."""
    _bounded(parameters)
    properties: dict[str, Any] = template.parameters.get("properties", {})
    values = {name: sub["default"] for name, sub in properties.items() if "default" in sub}
    values.update(parameters)
    issues = _schema.validate(values, template.parameters)
    if not issues:
        for path, name in placeholders(template.definition):
            issue = value_issue(site_kind(path), values[name], "/" + name)
            if issue is not None:
                issues.append(issue)
    if issues:
        raise TemplateParamsInvalid(issues)
    return values


def instantiate(
    template_id: str, parameters: Any = None, name: str | None = None
) -> dict[str, Any]:
    """The definition of ``template_id`` with ``parameters`` in place (not validated as
    a workflow: the caller's app does that with its step registry)."""
    template = get_template(template_id)
    values = resolve_parameters(template, {} if parameters is None else parameters)
    definition: dict[str, Any] = substitute(template.definition, values)
    if name is not None:
        definition["name"] = name
    return definition


__all__ = [
    "GALLERY",
    "MAX_PARAMETERS_BYTES",
    "RECORDINGS",
    "Template",
    "TemplateBroken",
    "TemplateNotFound",
    "TemplateParamsInvalid",
    "get_template",
    "instantiate",
    "list_templates",
    "load_template",
    "resolve_parameters",
]
