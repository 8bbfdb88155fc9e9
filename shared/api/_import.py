"""Importing a Cloud Workflows or Step Functions document, as REST and GraphQL both do.

``import_source`` translates (``shared.importers.translate``), and with ``save`` stores
the translation through the tenant's ``create_workflow`` use case (its validation,
quotas and name rules), provided it passes our validation (else ``DefinitionInvalid``)
and nothing was unsupported (else ``ImportUnsupported``, unless ``accept_unsupported``).
Nothing is stored otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.app import WorkflowApp
from shared.app.service import OnConflict
from shared.errors import DefinitionInvalid, InputInvalid, Issue, WorkflowError
from shared.importers import ImportResult, translate
from shared.models import WorkflowDefinition

__all__ = ["ImportOptions", "ImportUnsupported", "Imported", "import_source", "status_of"]


class ImportUnsupported(DefinitionInvalid):
    """A translation with unsupported constructs was not stored; ``issues`` point into
    the source document."""

    code = "IMPORT_UNSUPPORTED"


@dataclass(frozen=True)
class ImportOptions:
    """What an import asks for besides its source."""

    format: str
    """``gcw`` or ``asl``."""
    save: bool = False
    """Store the translation (else a dry run)."""
    accept_unsupported: bool = False
    """With ``save``: store a valid translation even with unsupported constructs."""
    name: str | None = None
    """The workflow's name (else the importer's ``imported-...``)."""
    on_conflict: OnConflict = "fail"


@dataclass(frozen=True)
class Imported:
    result: ImportResult
    workflow: WorkflowDefinition | None = None
    """The workflow created, with ``save``."""


def _check_storable(result: ImportResult, accept_unsupported: bool) -> None:
    details = {"import": result.to_dict()}
    if not result.valid:
        invalid = DefinitionInvalid(result.issues)
        invalid.details = details
        raise invalid
    if result.unsupported and not accept_unsupported:
        found = [Issue(u.code, u.message, u.path) for u in result.unsupported]
        blocked = ImportUnsupported(found)
        blocked.message = (
            f"{len(found)} construct(s) of the source have no equivalent (each is listed "
            "with its source pointer); accept them (acceptUnsupported) to store the "
            "translation anyway"
        )
        blocked.details = details
        raise blocked


async def import_source(
    app: WorkflowApp,
    source: str,
    options: ImportOptions,
    *,
    owner: str,
    may_update: Callable[[str], None],
) -> Imported:
    """Translate ``source``; with ``options.save`` store it when allowed.

    Raises:
        InputInvalid: the format is unknown or the source is not a bounded document of
            it (codes ``IMPORT_*``).
        DefinitionInvalid: ``save`` and the translation fails our validation.
        ImportUnsupported: ``save`` and constructs were unsupported.
    """
    result = translate(options.format, source, options.name, app.engine.registry)
    if not options.save:
        return Imported(result)
    _check_storable(result, options.accept_unsupported)
    workflow = await app.create_workflow(
        result.definition, owner=owner, on_conflict=options.on_conflict, may_update=may_update
    )
    return Imported(result, workflow)


def status_of(error: WorkflowError) -> int | None:
    """The HTTP status of an import's own error codes (None: the edge's table decides)."""
    if isinstance(error, ImportUnsupported):
        return 422
    if isinstance(error, InputInvalid):  # IMPORT_*, or the importer's own (GCW_NO_MAIN...)
        return 413 if error.code == "IMPORT_TOO_LARGE" else 400
    return None
