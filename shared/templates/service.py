"""The use case behind every edge (REST, GraphQL, ``wfe``): instantiate a template, and
optionally save it the way ``POST /workflows`` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.app import WorkflowApp
from shared.models import WorkflowDefinition
from shared.templates.catalog import instantiate


@dataclass(frozen=True)
class InstantiateRequest:
    """Which template, with which parameters, under which name, saved or not."""

    template_id: str
    parameters: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    save: bool = False


@dataclass(frozen=True)
class Instantiated:
    """The definition, and the workflow created from it when saved."""

    definition: dict[str, Any]
    workflow: WorkflowDefinition | None = None


async def instantiate_template(
    app: WorkflowApp,
    request: InstantiateRequest,
    *,
    owner: str = "",
    may_update: Callable[[str], None] | None = None,
) -> Instantiated:
    """Substitute and validate; with ``save``, create the workflow through
    ``WorkflowApp.create_workflow`` (the tenant's quotas and name uniqueness apply).

    Raises TEMPLATE_NOT_FOUND, TEMPLATE_PARAMS_INVALID (nothing substituted) or
    VALIDATION_FAILED (the result is not a valid workflow); nothing is stored on error.
    """
    definition = instantiate(request.template_id, request.parameters, request.name)
    if not request.save:
        app.validate(definition)
        return Instantiated(definition)
    workflow = await app.create_workflow(definition, owner=owner, may_update=may_update)
    return Instantiated(definition, workflow)


__all__ = ["InstantiateRequest", "Instantiated", "instantiate_template"]
