"""The tenant admin API: ``/api/v1/admin/tenants...`` (``docs/tenants.md``).

Tenants (create, list, read, update, quotas, disable) are for platform admins only;
a tenant's API keys are for platform admins and for the owners of that tenant. A
caller of another tenant is answered 404, as for any other tenant's object. Each
handler checks its caller, then calls one ``TenantAdmin`` use case. The retention
sweep (``POST /api/v1/admin/retention:sweep``, docs/flow-control.md, "Retention") is
for platform admins too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import Field
from starlette.responses import JSONResponse

from shared.api.auth import Principal, authorize_platform, authorize_tenant_keys
from shared.api.edge import edge_of
from shared.api.rest._deps import API, principal_of
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import _Body
from shared.app.retention import SweepRequest
from shared.app.tenants import TenantAdmin
from shared.errors import NotFound, WorkflowError
from shared.models.tenant import ApiKey, KeyRole, Tenant, TenantQuotas

__all__ = ["ApiKeyView", "IssuedKey", "RetentionSweepResult", "router"]

router = router_for("admin")

TENANTS = f"{API}/admin/tenants"
TenantIdPath = Annotated[
    str,
    Path(
        description="The tenant's id (a slug).",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    ),
]
KeyIdPath = Annotated[
    str, Path(description="The key's id.", min_length=8, max_length=32, pattern=r"^[a-z0-9]+$")
]


class TenantCreate(_Body):
    """Body of ``POST /admin/tenants``."""

    id: str = Field(min_length=1, max_length=63)
    """Slug naming the tenant (lowercase letters, digits, inner hyphens)."""
    display_name: str = Field(default="", max_length=200)
    disabled: bool = False
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)


class TenantChange(_Body):
    """Body of ``PATCH /admin/tenants/{id}``: the fields to change (quotas replaced whole)."""

    display_name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None
    quotas: TenantQuotas | None = None


class KeyRequest(_Body):
    """Body of ``POST /admin/tenants/{id}/keys``."""

    subject: str = Field(min_length=1, max_length=200)
    """Who the key authenticates (``ci-deployer``, an email...)."""
    role: KeyRole = "viewer"


class ApiKeyView(_Body):
    """An API key as listed: never its secret nor its hash."""

    id: str
    tenant: str
    subject: str
    role: KeyRole
    created_at: datetime
    created_by: str = ""
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls.model_validate(key.model_dump(exclude={"secret_sha256"}))


class IssuedKey(_Body):
    """A key just issued: ``secret`` is shown this once (only its hash is stored)."""

    key: ApiKeyView
    secret: str


class TenantList(_Body):
    items: list[Tenant]
    next_after: str | None = None
    """Pass as ``after`` for the next page; null on the last page."""


def _admin(request: Request) -> TenantAdmin:
    tenants = edge_of(request).runtime.tenants
    if tenants is None:
        raise WorkflowError("this deployment has no tenant registry", code="NOT_FOUND")
    return tenants


async def _platform(principal: Annotated[Principal, Depends(principal_of)]) -> Principal:
    authorize_platform(principal)
    return principal


async def _key_manager(
    tenant_id: TenantIdPath, principal: Annotated[Principal, Depends(principal_of)]
) -> Principal:
    if not principal.platform_admin and principal.tenant != tenant_id:
        raise NotFound(f"tenant {tenant_id} not found")  # another tenant's: as if absent
    authorize_tenant_keys(principal, tenant_id)
    return principal


Platform = Annotated[Principal, Depends(_platform)]
KeyManager = Annotated[Principal, Depends(_key_manager)]


def _tenant(tenant: Tenant, status: int = 200) -> JSONResponse:
    return JSONResponse(tenant.to_json_dict(), status_code=status)


def _key(key: ApiKey) -> dict[str, Any]:
    return ApiKeyView.of(key).model_dump(mode="json", by_alias=True, exclude_none=True)


@router.get(TENANTS, response_model=TenantList, responses=errors(400, 403))
async def list_tenants(
    request: Request,
    _caller: Platform,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    after: Annotated[
        str | None, Query(max_length=63, description="Tenants after this id only.")
    ] = None,
) -> JSONResponse:
    """List tenants by id (platform admins)."""
    items = await _admin(request).list_tenants(limit, after or None)
    more = len(items) == limit
    return JSONResponse(
        {
            "items": [t.to_json_dict() for t in items],
            "nextAfter": items[-1].id if items and more else None,
        }
    )


@router.post(TENANTS, status_code=201, response_model=Tenant, responses=errors(400, 403, 409, 422))
async def create_tenant(request: Request, body: TenantCreate, _caller: Platform) -> JSONResponse:
    """Create a tenant (platform admins); its id is refused when taken (409)."""
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    tenant = await _admin(request).create_tenant(raw)
    response = _tenant(tenant, 201)
    response.headers["Location"] = f"{TENANTS}/{tenant.id}"
    return response


@router.get(f"{TENANTS}/{{tenant_id}}", response_model=Tenant, responses=errors(400, 403, 404))
async def get_tenant(request: Request, tenant_id: TenantIdPath, _caller: Platform) -> JSONResponse:
    """A tenant and its quotas (platform admins)."""
    return _tenant(await _admin(request).get_tenant(tenant_id))


@router.patch(
    f"{TENANTS}/{{tenant_id}}", response_model=Tenant, responses=errors(400, 403, 404, 422)
)
async def update_tenant(
    request: Request, tenant_id: TenantIdPath, body: TenantChange, _caller: Platform
) -> JSONResponse:
    """Change a tenant's display name, disabled flag or quotas (platform admins)."""
    changes = body.model_dump(by_alias=True, exclude_unset=True)
    return _tenant(await _admin(request).update_tenant(tenant_id, changes))


@router.put(
    f"{TENANTS}/{{tenant_id}}/quotas", response_model=Tenant, responses=errors(400, 403, 404, 422)
)
async def set_tenant_quotas(
    request: Request, tenant_id: TenantIdPath, body: TenantQuotas, _caller: Platform
) -> JSONResponse:
    """Replace a tenant's quotas; an unset quota is no limit (platform admins)."""
    quotas = body.model_dump(by_alias=True, exclude_none=True)
    return _tenant(await _admin(request).set_quotas(tenant_id, quotas))


@router.post(
    f"{TENANTS}/{{tenant_id}}/disable", response_model=Tenant, responses=errors(400, 403, 404)
)
async def disable_tenant(
    request: Request, tenant_id: TenantIdPath, _caller: Platform
) -> JSONResponse:
    """Disable a tenant: its keys are refused within seconds; its data stays."""
    return _tenant(await _admin(request).set_disabled(tenant_id, True))


@router.post(
    f"{TENANTS}/{{tenant_id}}/enable", response_model=Tenant, responses=errors(400, 403, 404)
)
async def enable_tenant(
    request: Request, tenant_id: TenantIdPath, _caller: Platform
) -> JSONResponse:
    """Enable a disabled tenant again."""
    return _tenant(await _admin(request).set_disabled(tenant_id, False))


@router.get(f"{TENANTS}/{{tenant_id}}/keys", responses=errors(400, 403, 404))
async def list_tenant_keys(
    request: Request, tenant_id: TenantIdPath, _caller: KeyManager
) -> JSONResponse:
    """The tenant's API keys, revoked ones included (platform admins, its owners)."""
    keys = await _admin(request).list_keys(tenant_id)
    return JSONResponse({"items": [_key(k) for k in keys]})


@router.post(
    f"{TENANTS}/{{tenant_id}}/keys",
    status_code=201,
    response_model=IssuedKey,
    responses=errors(400, 403, 404, 422),
)
async def issue_tenant_key(
    request: Request, tenant_id: TenantIdPath, body: KeyRequest, caller: KeyManager
) -> JSONResponse:
    """Issue an API key; the answer holds its secret, shown this once."""
    key, secret = await _admin(request).issue_key(
        tenant_id, body.subject, body.role, created_by=caller.subject
    )
    return JSONResponse({"key": _key(key), "secret": secret}, status_code=201)


@router.delete(f"{TENANTS}/{{tenant_id}}/keys/{{key_id}}", responses=errors(400, 403, 404))
async def revoke_tenant_key(
    request: Request, tenant_id: TenantIdPath, key_id: KeyIdPath, _caller: KeyManager
) -> JSONResponse:
    """Revoke a key: refused everywhere within ``WFE_TENANT_CACHE_SECONDS``."""
    return JSONResponse(_key(await _admin(request).revoke_key(tenant_id, key_id)))


# -- retention (docs/flow-control.md: "Retention") --------------------------------------

RETENTION_SWEEP = f"{API}/admin/retention:sweep"
SWEEP_SECONDS = 40.0
"""How long one call deletes executions: it answers within the create function's
request timeout (60 s) with ``more: true`` when a backlog is left for the next call."""


class RetentionSweepResult(_Body):
    """What a retention sweep deleted (or, in a dry run, found)."""

    dry_run: bool
    executions: int
    runs: int
    """Step runs deleted."""
    events: int
    signals: int
    joins: int
    checkpoints: int
    """LangGraph checkpoints of the executions' agent steps."""
    bytes_released: int
    """Bytes taken off the tenants' storage counters (``maxStorageBytes``)."""
    audit_entries: int
    """Audit log entries past ``WFE_AUDIT_RETENTION_DAYS`` deleted."""
    rate_buckets: int
    """Idle rate-limit buckets deleted (SQLite)."""
    tenants: dict[str, int]
    """Executions deleted per tenant."""
    more: bool
    """The pass stopped at its bound: more executions may be expired (call again)."""


@router.post(RETENTION_SWEEP, response_model=RetentionSweepResult, responses=errors(401, 403))
async def sweep_retention(
    request: Request,
    caller: Platform,
    dry_run: Annotated[
        bool, Query(alias="dryRun", description="Count what would be deleted; delete nothing.")
    ] = False,
) -> JSONResponse:
    """Delete finished executions past their tenant's retention, old audit entries and
    idle rate-limit buckets (platform admins; Cloud Scheduler calls it hourly)."""
    sweeper = edge_of(request).runtime.retention()
    report = await sweeper.sweep(
        SweepRequest(subject=caller.subject, dry_run=dry_run, max_seconds=SWEEP_SECONDS)
    )
    return JSONResponse(report.to_json())
