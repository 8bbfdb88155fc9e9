"""``workflowVersionDiff``: the structural diff of two versions of a workflow, as
``GET /api/v1/workflows/{id}/versions/{from}/diff/{to}`` serves it
(``shared.app.version_diff``)."""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from shared.api.auth import authorize
from shared.api.graphql.context import GqlInfo, caller
from shared.app import version_diff as vd
from shared.errors import NotFound

__all__ = ["VersionDiff", "VersionDiffQuery"]


@strawberry.type(description="One changed value of a version diff.")
class VersionFieldChange:
    path: str = strawberry.field(description="JSON pointer of the value (RFC 6901).")
    kind: str = strawberry.field(description="added, removed or changed.")
    before: JSON | None = strawberry.field(description="The old value; null when added.")
    after: JSON | None = strawberry.field(description="The new value; null when removed.")

    @classmethod
    def from_model(cls, change: vd.FieldChange) -> VersionFieldChange:
        return cls(
            path=change.path,
            kind=change.kind,
            before=JSON(change.before) if change.before is not None else None,
            after=JSON(change.after) if change.after is not None else None,
        )


def _changes(changes: list[vd.FieldChange]) -> list[VersionFieldChange]:
    return [VersionFieldChange.from_model(c) for c in changes]


@strawberry.type(description="A step added or removed.")
class VersionDiffStepRef:
    id: str
    type: str


@strawberry.type(description="A step of both versions whose content differs.")
class VersionDiffStep:
    id: str
    type: str = strawberry.field(description="The step's type in the newer version.")
    changes: list[VersionFieldChange] = strawberry.field(
        description="Field-level changes; paths are JSON pointers inside the step."
    )


@strawberry.type(description="Steps matched by id.")
class VersionDiffSteps:
    added: list[VersionDiffStepRef]
    removed: list[VersionDiffStepRef]
    changed: list[VersionDiffStep]


@strawberry.type(description="An edge of the step graph.")
class VersionDiffEdge:
    source: str
    target: str
    kind: str = strawberry.field(
        description="next, case, default, branch (parallel), body (map), decision or fallback."
    )
    label: str | None = strawberry.field(description="The parallel branch's name.")


@strawberry.type(description="Edges of the step graph added and removed.")
class VersionDiffEdges:
    added: list[VersionDiffEdge]
    removed: list[VersionDiffEdge]


def _edges(edges: list[vd.EdgeChange]) -> list[VersionDiffEdge]:
    return [
        VersionDiffEdge(source=e.source, target=e.target, kind=e.kind, label=e.label) for e in edges
    ]


@strawberry.type(description="What changed from one version of a workflow to another.")
class VersionDiff:
    workflow_id: strawberry.ID
    from_version: int
    to_version: int
    identical: bool = strawberry.field(description="Nothing but server fields differ.")
    steps: VersionDiffSteps
    edges: VersionDiffEdges
    variables: list[VersionFieldChange] = strawberry.field(
        description="Changes of `variables`; paths inside it (`/key`)."
    )
    trigger: list[VersionFieldChange] = strawberry.field(
        description="Changes of `trigger`; paths inside it (`/cron`)."
    )
    fields: list[VersionFieldChange] = strawberry.field(
        description="Other top-level fields (name, timeoutSeconds, startStep, ...)."
    )
    truncated: bool = strawberry.field(
        description=f"A limit applied (at most {vd.MAX_CHANGES} changes; differences "
        f"deeper than {vd.MAX_DEPTH} levels reported as their whole subtree)."
    )

    @classmethod
    def from_model(cls, diff: vd.VersionDiff) -> VersionDiff:
        return cls(
            workflow_id=strawberry.ID(diff.workflow_id),
            from_version=diff.from_version,
            to_version=diff.to_version,
            identical=diff.identical,
            steps=VersionDiffSteps(
                added=[VersionDiffStepRef(id=s.id, type=s.type) for s in diff.steps.added],
                removed=[VersionDiffStepRef(id=s.id, type=s.type) for s in diff.steps.removed],
                changed=[
                    VersionDiffStep(id=s.id, type=s.type, changes=_changes(s.changes))
                    for s in diff.steps.changed
                ],
            ),
            edges=VersionDiffEdges(
                added=_edges(diff.edges.added), removed=_edges(diff.edges.removed)
            ),
            variables=_changes(diff.variables),
            trigger=_changes(diff.trigger),
            fields=_changes(diff.fields),
            truncated=diff.truncated,
        )


@strawberry.type
class VersionDiffQuery:
    @strawberry.field(
        description="The structural diff from version `from` to version `to` of a workflow; "
        "null if either version is not in the caller's tenant."
    )
    async def workflow_version_diff(
        self,
        info: GqlInfo,
        workflow_id: strawberry.ID,
        from_: Annotated[int, strawberry.argument(name="from")],
        to: int,
    ) -> VersionDiff | None:
        who = await caller(info)
        authorize(who.principal, "read", workflow_id)
        if from_ < 1 or to < 1:
            return None
        try:
            before = await who.app.get_version(workflow_id, from_)
            after = await who.app.get_version(workflow_id, to)
        except NotFound:
            return None
        diff = vd.diff_definitions(before, after)
        diff.workflow_id = workflow_id
        return VersionDiff.from_model(diff)
