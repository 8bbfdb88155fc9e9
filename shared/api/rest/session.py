"""``GET /api/v1/session``: who the caller is, for the web console's sign-in and roles."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from shared.api.auth import LocalDevAuthenticator, Principal
from shared.api.edge import edge_of
from shared.api.rest._deps import API, principal_of, respond
from shared.api.rest._docs import router_for
from shared.api.rest.schemas import _Body

router = router_for("session")

RoleName = Literal["viewer", "editor", "admin", "owner"]


class Session(_Body):
    """The authenticated caller."""

    principal: str
    """The subject the credentials name (``local-dev`` in local mode)."""
    tenant: str
    role: RoleName
    """The caller's role on the tenant's workflows (per-workflow roles may differ)."""
    workflow_roles: dict[str, RoleName]
    """Per-workflow roles that override ``role``, by workflow id."""
    auth_required: bool
    """Whether the API wants credentials (false in local mode, where everyone is owner)."""


@router.get(f"{API}/session", response_model=Session)
async def get_session(
    request: Request, principal: Annotated[Principal, Depends(principal_of)]
) -> JSONResponse:
    """The caller's principal, tenant and role, and whether the API requires credentials."""
    local = isinstance(edge_of(request).authenticator, LocalDevAuthenticator)
    session = Session(
        principal=principal.subject,
        tenant=principal.tenant,
        role=principal.role.name.lower(),  # type: ignore[arg-type]
        workflow_roles={k: v.name.lower() for k, v in principal.workflow_roles.items()},  # type: ignore[misc]
        auth_required=not local,
    )
    return respond(session)
