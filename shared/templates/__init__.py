"""Workflow templates: a gallery of parameterised definitions (``gallery/*.yaml``).

``list_templates``/``get_template`` read the gallery; ``instantiate`` substitutes the
parameters (whole values at ``{{param: NAME}}`` placeholders, checked against the
template's JSON Schema); ``instantiate_template`` is the use case the REST, GraphQL and
CLI edges call. See docs/templates.md.
"""

from shared.templates.catalog import (
    GALLERY,
    RECORDINGS,
    Template,
    TemplateNotFound,
    TemplateParamsInvalid,
    get_template,
    instantiate,
    list_templates,
)
from shared.templates.service import Instantiated, InstantiateRequest, instantiate_template

__all__ = [
    "GALLERY",
    "RECORDINGS",
    "InstantiateRequest",
    "Instantiated",
    "Template",
    "TemplateNotFound",
    "TemplateParamsInvalid",
    "get_template",
    "instantiate",
    "instantiate_template",
    "list_templates",
]
