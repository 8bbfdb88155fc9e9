"""``GET /api/v1/workflows/{id}/versions/{from}/diff/{to}``: the structural diff of two
versions of a workflow (``shared.app.version_diff``), read like one version is."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from starlette.responses import Response

from shared.api.rest._deps import API, Reader, respond
from shared.api.rest._docs import errors, router_for
from shared.app.version_diff import VersionDiff, diff_definitions

router = router_for("workflows")

MAX_VERSION = 2**31 - 1


@router.get(
    f"{API}/workflows/{{workflow_id}}/versions/{{from_version:int}}/diff/{{to_version:int}}",
    response_model=VersionDiff,
    responses=errors(400, 404),
)
async def diff_versions(
    workflow_id: Annotated[str, Path(description="The workflow's id.")],
    from_version: Annotated[
        int, Path(ge=1, le=MAX_VERSION, description="The older version (the diff's `before`).")
    ],
    to_version: Annotated[
        int, Path(ge=1, le=MAX_VERSION, description="The newer version (the diff's `after`).")
    ],
    caller: Reader,
) -> Response:
    """What changed between two versions: steps added, removed and changed (field by
    field), edges of the step graph, variables, trigger and the other fields."""
    before = await caller.app.get_version(workflow_id, from_version)
    after = await caller.app.get_version(workflow_id, to_version)
    diff = diff_definitions(before, after)
    diff.workflow_id = workflow_id
    return respond(diff)
