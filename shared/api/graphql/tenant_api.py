"""Tenant administration in GraphQL: the same use cases and rules as
``/api/v1/admin/tenants`` (``shared.api.rest.admin``).

Tenants are for platform admins; a tenant's keys for platform admins and that
tenant's owners (another tenant's id answers NOT_FOUND). Refusals surface as
``errors`` entries with ``extensions.code`` (``FORBIDDEN``, ``NOT_FOUND``,
``TENANT_EXISTS``, ``VALIDATION_FAILED`` with a JSON pointer...).
"""

# mypy: disable-error-code="untyped-decorator"
# (strawberry.field(...) with arguments is typed as returning Any)
from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from shared.api.auth import Principal, authorize_platform, authorize_tenant_keys
from shared.api.edge import edge_of
from shared.api.graphql.context import GqlInfo, caller
from shared.app.tenants import TenantAdmin, tenant_id_param
from shared.errors import NotFound, WorkflowError
from shared.models.tenant import ApiKey, Tenant

__all__ = ["TenantMutation", "TenantQuery"]


@strawberry.type(name="TenantQuotas", description="A tenant's quotas; null is no limit.")
class QuotasType:
    max_running_executions: int | None
    max_queued_executions: int | None
    steps_per_second: float | None
    steps_burst: float | None
    max_workflows: int | None
    max_definition_bytes: int | None
    max_storage_bytes: float | None = strawberry.field(
        default=None,
        description="Most bytes of executions the tenant may store (a Float: past 2^31).",
    )
    retention_days: int | None = strawberry.field(
        default=None,
        description="Days finished executions are kept (null: the deployment's default).",
    )


@strawberry.input(name="TenantQuotasInput", description="Quotas to set; unset is no limit.")
class QuotasInput:
    max_running_executions: int | None = None
    max_queued_executions: int | None = None
    steps_per_second: float | None = None
    steps_burst: float | None = None
    max_workflows: int | None = None
    max_definition_bytes: int | None = None
    max_storage_bytes: float | None = strawberry.field(
        default=None,
        description="Most bytes of executions the tenant may store (a whole number).",
    )
    retention_days: int | None = strawberry.field(
        default=None,
        description="Days finished executions are kept, 1 to 3650 (null: the default).",
    )


@strawberry.type(name="Tenant", description="A tenant of the deployment.")
class TenantType:
    id: strawberry.ID
    display_name: str
    disabled: bool
    quotas: QuotasType
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_model(cls, tenant: Tenant) -> TenantType:
        return cls(
            id=strawberry.ID(tenant.id),
            display_name=tenant.display_name,
            disabled=tenant.disabled,
            quotas=QuotasType(**tenant.quotas.model_dump()),
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )


@strawberry.type(name="TenantApiKey", description="An API key (never its secret nor hash).")
class KeyType:
    id: strawberry.ID
    tenant: str
    subject: str
    role: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, key: ApiKey) -> KeyType:
        return cls(
            id=strawberry.ID(key.id),
            tenant=key.tenant,
            subject=key.subject,
            role=key.role,
            created_at=key.created_at,
            created_by=key.created_by,
            revoked_at=key.revoked_at,
        )


@strawberry.type(description="A key just issued: `secret` is shown this once.")
class IssuedTenantKey:
    key: KeyType
    secret: str


def _quotas(quotas: QuotasInput) -> dict[str, Any]:
    return {k: v for k, v in vars(quotas).items() if v is not None}


async def _admin(info: GqlInfo) -> tuple[Principal, TenantAdmin]:
    who = await caller(info)
    connection = info.context.get("request")
    tenants = edge_of(connection).runtime.tenants if connection else None
    if tenants is None:
        raise WorkflowError("this deployment has no tenant registry", code="NOT_FOUND")
    return who.principal, tenants


async def _platform(info: GqlInfo) -> TenantAdmin:
    principal, tenants = await _admin(info)
    authorize_platform(principal)
    return tenants


async def _key_manager(info: GqlInfo, tenant_id: str) -> tuple[Principal, TenantAdmin]:
    principal, tenants = await _admin(info)
    tenant_id_param(tenant_id)
    if not principal.platform_admin and principal.tenant != tenant_id:
        raise NotFound(f"tenant {tenant_id} not found")
    authorize_tenant_keys(principal, tenant_id)
    return principal, tenants


@strawberry.type
class TenantQuery:
    @strawberry.field(description="Tenants by id (platform admins).")
    async def tenants(
        self, info: GqlInfo, first: int = 100, after: str | None = None
    ) -> list[TenantType]:
        tenants = await _platform(info)
        return [TenantType.from_model(t) for t in await tenants.list_tenants(first, after)]

    @strawberry.field(description="One tenant (platform admins).")
    async def tenant(self, info: GqlInfo, id: strawberry.ID) -> TenantType:
        tenants = await _platform(info)
        return TenantType.from_model(await tenants.get_tenant(str(id)))

    @strawberry.field(description="A tenant's API keys (platform admins, its owners).")
    async def tenant_keys(self, info: GqlInfo, tenant_id: strawberry.ID) -> list[KeyType]:
        _, tenants = await _key_manager(info, str(tenant_id))
        return [KeyType.from_model(k) for k in await tenants.list_keys(str(tenant_id))]


@strawberry.type
class TenantMutation:
    @strawberry.mutation(description="Create a tenant (platform admins).")
    async def create_tenant(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        display_name: str = "",
        quotas: QuotasInput | None = None,
    ) -> TenantType:
        tenants = await _platform(info)
        raw = {
            "id": str(id),
            "displayName": display_name,
            "quotas": _quotas(quotas or QuotasInput()),
        }
        return TenantType.from_model(await tenants.create_tenant(raw))

    @strawberry.mutation(description="Rename, disable or enable a tenant (platform admins).")
    async def update_tenant(
        self,
        info: GqlInfo,
        id: strawberry.ID,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> TenantType:
        tenants = await _platform(info)
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["displayName"] = display_name
        if disabled is not None:
            changes["disabled"] = disabled
        return TenantType.from_model(await tenants.update_tenant(str(id), changes))

    @strawberry.mutation(description="Replace a tenant's quotas (platform admins).")
    async def set_tenant_quotas(
        self, info: GqlInfo, id: strawberry.ID, quotas: QuotasInput
    ) -> TenantType:
        tenants = await _platform(info)
        return TenantType.from_model(await tenants.set_quotas(str(id), _quotas(quotas)))

    @strawberry.mutation(description="Issue an API key; its secret is in this answer only.")
    async def issue_tenant_key(
        self, info: GqlInfo, tenant_id: strawberry.ID, subject: str, role: str = "viewer"
    ) -> IssuedTenantKey:
        principal, tenants = await _key_manager(info, str(tenant_id))
        key, secret = await tenants.issue_key(
            str(tenant_id), subject, role, created_by=principal.subject
        )
        return IssuedTenantKey(key=KeyType.from_model(key), secret=secret)

    @strawberry.mutation(description="Revoke an API key (refused within seconds everywhere).")
    async def revoke_tenant_key(
        self, info: GqlInfo, tenant_id: strawberry.ID, key_id: strawberry.ID
    ) -> KeyType:
        _, tenants = await _key_manager(info, str(tenant_id))
        return KeyType.from_model(await tenants.revoke_key(str(tenant_id), str(key_id)))
