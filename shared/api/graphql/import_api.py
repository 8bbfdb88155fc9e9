"""``importWorkflow``: a Cloud Workflows or Step Functions document translated into ours
(a dry run, or saved as a new workflow), as ``POST /api/v1/workflows/import?format=``."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from shared.api._import import Imported, ImportOptions, import_source
from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.api.graphql.errors import (
    ConflictError,
    FieldIssue,
    ForbiddenError,
    InvalidStateError,
    NotFoundError,
    ValidationErrors,
    as_payload,
)
from shared.api.graphql.workflow_types import Workflow
from shared.importers import Finding

__all__ = ["ImportFormat", "ImportMutation", "WorkflowImport"]


@strawberry.enum(description="The language of an imported document.")
class ImportFormat(Enum):
    GCW = "gcw"
    ASL = "asl"


@strawberry.type(
    description="A construct translated with a documented difference (a warning) or not "
    "translated (unsupported)."
)
class ImportFinding:
    code: str
    message: str
    path: str = strawberry.field(description="JSON pointer into the SOURCE document.")

    @classmethod
    def from_finding(cls, finding: Finding) -> ImportFinding:
        return cls(code=finding.code, message=finding.message, path=finding.path)


@strawberry.type(description="A translation, and the workflow created from it when saved.")
class WorkflowImport:
    definition: JSON = strawberry.field(description="The translated definition (our JSON).")
    valid: bool = strawberry.field(description="Whether `definition` passes our validation.")
    issues: list[FieldIssue] = strawberry.field(
        description="Validation problems, addressed by JSON pointers into `definition`."
    )
    warnings: list[ImportFinding]
    unsupported: list[ImportFinding]
    workflow: Workflow | None = strawberry.field(
        description="The workflow created (`save: true`); null for a dry run."
    )

    @classmethod
    def from_imported(cls, imported: Imported) -> WorkflowImport:
        result = imported.result
        return cls(
            definition=JSON(result.definition),
            valid=result.valid,
            issues=[FieldIssue(code=i.code, message=i.message, path=i.path) for i in result.issues],
            warnings=[ImportFinding.from_finding(f) for f in result.warnings],
            unsupported=[ImportFinding.from_finding(f) for f in result.unsupported],
            workflow=Workflow.from_model(imported.workflow) if imported.workflow else None,
        )


ImportPayload = Annotated[
    WorkflowImport
    | ValidationErrors
    | NotFoundError
    | ConflictError
    | InvalidStateError
    | ForbiddenError,
    strawberry.union(
        "ImportWorkflowPayload",
        description="The translation (and the saved workflow), or why it was refused: "
        "IMPORT_* codes for a source that cannot be read, VALIDATION_FAILED or "
        "IMPORT_UNSUPPORTED when `save` could not store it (nothing stored).",
    ),
]


@strawberry.type
class ImportMutation:
    @strawberry.mutation(
        description="Translate a Cloud Workflows (`GCW`) or Step Functions (`ASL`) document "
        "(JSON or YAML text). A dry run unless `save`, which stores a valid translation with "
        "nothing unsupported (or with `acceptUnsupported`) as a new workflow."
    )
    async def import_workflow(
        self,
        info: GqlInfo,
        format: ImportFormat,
        source: str,
        save: bool = False,
        accept_unsupported: bool = False,
        name: str | None = None,
    ) -> ImportPayload:
        who = await caller(info)

        async def work() -> Imported:
            authorize(who.principal, "write" if save else "read")
            options = ImportOptions(format.value, save, accept_unsupported, name)
            return await import_source(
                who.app,
                source,
                options,
                owner=who.principal.subject,
                may_update=lambda workflow_id: authorize(who.principal, "write", workflow_id),
            )

        return await as_payload(work(), WorkflowImport.from_imported)
