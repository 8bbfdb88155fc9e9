"""Tenants as records: who they are, their quotas, and the API keys of their principals.

A ``Tenant`` is what the admin API, the CLI and Terraform create (``docs/tenants.md``);
every other record names its tenant by ``Tenant.id``. ``TenantQuotas`` fields left
unset mean "no limit". An ``ApiKey`` keeps the SHA-256 of its secret, never the
secret: the secret is shown once, when the key is issued.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.models._base import ApiModel

__all__ = [
    "TENANT_ID_PATTERN",
    "ApiKey",
    "KeyRole",
    "Tenant",
    "TenantQuotas",
    "check_tenant_id",
]

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
"""A slug: lowercase ASCII letters, digits and inner hyphens, 1 to 63 characters (a DNS
label: safe in URLs, Firestore document ids, log fields and Terraform keys)."""

KeyRole = Literal["viewer", "editor", "admin", "owner"]
"""The role an API key gives its subject on every workflow of its tenant."""


def check_tenant_id(value: str) -> str:
    """``value`` if it is a tenant id (``TENANT_ID_PATTERN``), else ValueError."""
    if not isinstance(value, str) or not TENANT_ID_PATTERN.match(value):
        raise ValueError(
            "a tenant id is 1 to 63 lowercase letters, digits and inner hyphens (e.g. acme-prod)"
        )
    return value


TenantId = Annotated[str, AfterValidator(check_tenant_id)]


class TenantQuotas(ApiModel):
    """A tenant's quotas; an unset field is no limit (the deployment's rate limits apply)."""

    max_running_executions: int | None = Field(default=None, ge=0, le=10_000_000)
    """Most executions of the tenant started and not finished (pending, running,
    waiting, paused) at once; a start past it is refused with QUOTA_EXCEEDED (429)."""
    max_queued_executions: int | None = Field(default=None, ge=0, le=10_000_000)
    """Most executions of the tenant waiting in the ``queued`` state (flow control)."""
    steps_per_second: float | None = Field(default=None, gt=0, le=1_000_000)
    """Sustained step deliveries per second of the tenant's executions (token bucket)."""
    steps_burst: float | None = Field(default=None, ge=1, le=10_000_000)
    """Bucket size of ``stepsPerSecond`` (default: one second's worth, at least 1)."""
    max_workflows: int | None = Field(default=None, ge=0, le=10_000_000)
    """Most workflows (not deleted) the tenant may hold; creates and imports past it are
    refused with QUOTA_EXCEEDED (409: retrying does not help)."""
    max_definition_bytes: int | None = Field(default=None, ge=1, le=1_000_000)
    """Largest definition (its JSON, in bytes) the tenant may save; the storage budget
    is at most ``maxWorkflows`` x this (versions are immutable and kept)."""
    max_storage_bytes: int | None = Field(default=None, ge=0, le=10**15)
    """Most bytes the tenant's executions may hold in the store (their documents with
    inputs and outputs, step runs with outputs, events; counted by the store as it
    writes them); a start past it, or whose input would pass it, is refused with
    QUOTA_EXCEEDED (409: waiting does not free storage)."""
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    """Days the tenant's finished executions are kept (with their step runs, events and
    checkpoints) before the retention sweep deletes them and releases their storage;
    unset: the deployment's ``WFE_EXECUTION_RETENTION_DAYS``."""


class Tenant(ApiModel):
    """A tenant of the deployment."""

    id: TenantId
    """Slug naming the tenant everywhere (``acme``); immutable."""
    display_name: str = Field(default="", max_length=200)
    """Human name (``Acme Corp.``)."""
    disabled: bool = False
    """A disabled tenant's API keys are refused (its data stays)."""
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    created_at: datetime | None = None
    """When the tenant was created (None: written by Terraform, which sets no time)."""
    updated_at: datetime | None = None


class ApiKey(ApiModel):
    """An API key of one subject in one tenant: ``wfe_<id>_<secret>``, stored hashed."""

    id: str = Field(pattern=r"^[a-z0-9]{8,32}$")
    """Public part of the key (the key's name in listings and revocations)."""
    tenant: TenantId
    subject: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    """Who the key authenticates (logs and the audit log name it)."""
    role: KeyRole
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Hex SHA-256 of the whole key; the key itself is never stored."""
    created_at: datetime
    created_by: str = ""
    """Subject of the principal that issued the key."""
    revoked_at: datetime | None = None
    """When the key was revoked (a revoked key is refused, and stays listed)."""
