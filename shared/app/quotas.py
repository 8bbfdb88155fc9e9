"""Rate limits of the use cases: API requests per principal and per tenant, execution
starts per tenant, webhook calls per workflow and source.

``Quotas`` turns the settings (defaults and per-tenant overrides) into ``RateLimit``s
and asks the ``RateLimiter`` port; a refusal raises ``RateLimited`` (code
``RATE_LIMITED``, answered 429 with ``Retry-After`` by the HTTP edges). With a
``TenantQuotaGuard`` (``tenants``), the quotas of the tenant registry apply too
(``QUOTA_EXCEEDED``, ``shared.app.tenants``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from shared.app.tenants import TenantQuotaGuard
from shared.errors import WorkflowError
from shared.ports.limits import RateLimit, RateLimiter
from shared.settings import LimitSettings

__all__ = ["Quotas", "RateLimited"]

Kind = Literal["principal", "tenant", "start", "webhook"]


class RateLimited(WorkflowError):
    """Too many requests; ``retry_after`` seconds until one would be let through.

    Retryable: a trigger's delivery is retried later (Pub/Sub redelivers, Cloud
    Scheduler and webhook senders retry), a client waits ``Retry-After``."""

    code = "RATE_LIMITED"
    retryable = True

    def __init__(self, message: str, retry_after: float, *, retryable: bool = True) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        """Whole seconds, at least 1 (the ``Retry-After`` header's unit)."""
        super().__init__(
            message, details={"retryAfterSeconds": self.retry_after}, retryable=retryable
        )

    def answered_429(self) -> RateLimited:
        """The same refusal, not retryable: the trigger edge answers a retryable error 503
        (for Pub/Sub's redelivery), a webhook sender is better told 429 and Retry-After."""
        return RateLimited(self.message, self.retry_after, retryable=False)


class Quotas:
    """The limits of one deployment over a shared ``RateLimiter``."""

    def __init__(
        self,
        limiter: RateLimiter,
        settings: LimitSettings,
        tenants: TenantQuotaGuard | None = None,
    ) -> None:
        self.limiter = limiter
        self.settings = settings
        self.tenants = tenants
        """The tenant registry's quotas (None: no registry, only the rate limits)."""

    def limit(self, kind: Kind, tenant: str) -> RateLimit:
        """The limit of ``kind`` for ``tenant``: its override, else the default."""
        own = self.settings.tenant_limits.get(tenant)
        rate = getattr(own, f"{kind}_rps", None) if own else None
        burst = getattr(own, f"{kind}_burst", None) if own else None
        return RateLimit(
            rate or getattr(self.settings, f"limit_{kind}_rps"),
            burst or getattr(self.settings, f"limit_{kind}_burst"),
        )

    async def _check(self, kind: Kind, tenant: str, key: str, what: str) -> None:
        if not self.settings.rate_limits:
            return
        decision = await self.limiter.acquire(f"{kind}:{key}", self.limit(kind, tenant))
        if not decision.allowed:
            raise RateLimited(f"rate limit exceeded: {what}", decision.retry_after)

    async def admit_request(self, subject: str, tenant: str) -> None:
        """One API request of ``subject`` in ``tenant`` (both buckets must admit it)."""
        await self._check("principal", tenant, f"{tenant}:{subject}", "requests of this caller")
        await self._check("tenant", tenant, tenant, "requests of this tenant")

    async def admit_start(self, tenant: str, input: Any = None) -> None:
        """One execution start in ``tenant`` with ``input``: its quotas (counts and
        storage first, so a refused start takes no token), then the start rate."""
        if self.tenants is not None:
            await self.tenants.admit_start(tenant, input)
        await self._check("start", tenant, tenant, "execution starts of this tenant")

    async def admit_workflow(self, tenant: str, definition_bytes: int, *, new: int) -> None:
        """Definitions saved in ``tenant``, the largest of ``definition_bytes``, adding
        ``new`` workflows."""
        if self.tenants is not None:
            await self.tenants.admit_workflow(tenant, definition_bytes, new=new)

    async def admit_step(self, execution_id: str, *, tenant: str = "") -> None:
        """One step delivery of ``execution_id`` under its tenant's step throughput
        (``tenant``: the task's in-process hint, else the execution is read)."""
        if self.tenants is not None:
            await self.tenants.admit_step(execution_id, tenant=tenant)

    async def admit_failure_record(self, tenant: str, address: str) -> bool:
        """Whether one more refused call from ``address`` (a client address, or
        ``principal:<subject>``) may be recorded in the audit log, under the principal
        limits: a flood of bad keys or of rate-limited calls must not become a flood of
        writes."""
        if not self.settings.rate_limits:
            return True
        limit = self.limit("principal", tenant)
        decision = await self.limiter.acquire(f"auth-failure:{address or '-'}", limit)
        return decision.allowed

    async def admit_webhook(self, tenant: str, workflow_id: str, source: str) -> None:
        """One webhook call of ``workflow_id`` from ``source`` (an address or a key id)."""
        key = f"{tenant}:{workflow_id}:{source or '-'}"
        try:
            await self._check("webhook", tenant, key, "webhook calls of this workflow and source")
        except RateLimited as refused:
            raise refused.answered_429() from None
