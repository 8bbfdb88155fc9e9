"""Tenants as use cases: the admin operations (``TenantAdmin``), the registry as the
authenticator and the quota checks read it (``TenantDirectory``, cached), and the
tenant quotas (``TenantQuotaGuard``, refusing with QUOTA_EXCEEDED).

Who may call the admin operations is the edge's business (``shared.api.auth``:
platform admins for tenants, a tenant's owners for its own keys); this module trusts
its caller and validates every input.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from shared.errors import DefinitionInvalid, InputInvalid, Issue, NotFound, WorkflowError
from shared.models.tenant import ApiKey, Tenant, TenantQuotas, check_tenant_id
from shared.ports.clock import Clock
from shared.ports.limits import RateLimit, RateLimiter
from shared.ports.tenants import ACTIVE_STATUSES, QUEUED_STATUSES, TenantStore, TenantUsage

__all__ = [
    "KEY_PREFIX",
    "QuotaExceeded",
    "TenantAdmin",
    "TenantDirectory",
    "TenantQuotaGuard",
    "key_digest",
    "parse_key",
    "tenant_id_param",
]

KEY_PREFIX = "wfe_"
"""Every registry key starts so: ``wfe_<key id>_<secret>``."""
_KEY_ID_LENGTH = 12
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_EDITABLE = frozenset({"displayName", "display_name", "disabled", "quotas"})
MAX_KEY_LENGTH = 200
"""Longest value taken as a registry key (anything longer is refused unhashed)."""


class QuotaExceeded(WorkflowError):
    """A tenant quota refused the call. Retryable (429 with ``Retry-After``) when waiting
    can help (running, queued, step throughput); otherwise 409 (workflows, size)."""

    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, quota: str, *, retry_after: float | None = None) -> None:
        details: dict[str, Any] = {"quota": quota}
        if retry_after is not None:
            details["retryAfterSeconds"] = max(1, math.ceil(retry_after))
        super().__init__(message, details=details, retryable=retry_after is not None)


def key_digest(key: str) -> str:
    """Hex SHA-256 of a whole key (what the registry stores)."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of a registry key (``wfe_<id>_<secret>``), or None if not shaped so."""
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_LENGTH:
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not secret or len(key_id) != _KEY_ID_LENGTH:
        return None
    return key_id if all(c in _ALPHABET for c in key_id) else None


def tenant_id_param(value: str, path: str = "/tenantId") -> str:
    """``value`` if it is a tenant id, else INVALID_INPUT (never echoing huge input)."""
    try:
        return check_tenant_id(value)
    except ValueError as exc:
        raise InputInvalid(str(exc), path=path) from None


def _invalid(exc: ValidationError, prefix: str = "") -> DefinitionInvalid:
    issues = []
    for item in exc.errors():
        where = "".join(f"/{part}" for part in item.get("loc", ()))
        issues.append(Issue("INVALID_VALUE", str(item.get("msg", "invalid")), prefix + where))
    return DefinitionInvalid(issues)


class TenantDirectory:
    """The registry as the hot paths read it: tenants and keys cached for ``ttl``
    seconds, so a revoked key or a disabled tenant is refused within ``ttl``."""

    def __init__(
        self,
        store: TenantStore,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Any]] = {}
        """Loads running now, by entry: the callers that miss meanwhile wait for them."""
        self._generation = 0
        """Bumped by ``forget``: a load started before it is not kept."""

    async def _cached(self, name: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The entry ``name``, loaded when missing or older than ``ttl``.

        One load per entry at a time: callers that miss while it runs wait for it
        instead of loading again. (Each load is a read through the side connection, one
        at a time: when the entry of a busy tenant expired, every start in flight read
        it again, one after another, and 1,000 concurrent starts committed one per
        group for as long as that took, half the throughput.) A caller that gives up
        does not cancel the load the others wait for; a failed load fails its waiters
        and the next call tries again.
        """
        now = self._clock()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        loading = self._loading.get(name)
        if loading is None or loading.get_loop() is not asyncio.get_running_loop():
            loading = asyncio.ensure_future(self._load(name, load, now, self._generation))
            self._loading[name] = loading
            loading.add_done_callback(lambda done: self._loaded(name, done))
        return await asyncio.shield(loading)

    async def _load(
        self, name: str, load: Callable[[], Awaitable[Any]], now: float, generation: int
    ) -> Any:
        value = await load()
        if generation == self._generation:  # not read before a ``forget``
            self._cache[name] = (now, value)
            self._cache.move_to_end(name)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return value

    def _loaded(self, name: str, done: asyncio.Future[Any]) -> None:
        if self._loading.get(name) is done:
            del self._loading[name]
        if not done.cancelled():
            done.exception()  # retrieved: a failure nobody waited for is not logged

    async def tenant(self, tenant_id: str) -> Tenant | None:
        loaded: Tenant | None = await self._cached(
            f"t:{tenant_id}", lambda: self.store.get_tenant(tenant_id)
        )
        return loaded

    async def key(self, key: str) -> ApiKey | None:
        """The registry key ``key`` is, if it is one, not revoked, and its hash matches."""
        key_id = parse_key(key)
        if key_id is None:
            return None
        stored: ApiKey | None = await self._cached(
            f"k:{key_id}", lambda: self.store.get_key(key_id)
        )
        if stored is None or stored.revoked_at is not None:
            return None
        return stored if hmac.compare_digest(stored.secret_sha256, key_digest(key)) else None

    def forget(self) -> None:
        """Drop every cached entry (this process's own changes are seen at once); a load
        running now serves its waiters but is not kept, and the next caller loads anew."""
        self._cache.clear()
        self._loading.clear()
        self._generation += 1


class TenantAdmin:
    """Create, read, update and disable tenants; issue, list and revoke their keys."""

    def __init__(self, directory: TenantDirectory, clock: Clock) -> None:
        self.directory = directory
        self.store = directory.store
        self.clock = clock

    async def create_tenant(self, raw: Mapping[str, Any]) -> Tenant:
        if not isinstance(raw, Mapping):
            raise InputInvalid("body must be a JSON object")
        server = {"createdAt", "updatedAt", "created_at", "updated_at"} & set(raw)
        if server:
            raise InputInvalid(
                f"{sorted(server)[0]} is set by the server", path=f"/{sorted(server)[0]}"
            )
        now = self.clock.now()
        try:
            tenant = Tenant.model_validate({**raw, "createdAt": now, "updatedAt": now})
        except ValidationError as exc:
            raise _invalid(exc) from None
        await self.store.create_tenant(tenant)
        self.directory.forget()
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant:
        tenant = await self.store.get_tenant(tenant_id_param(tenant_id))
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return tenant

    async def list_tenants(self, limit: int = 100, after: str | None = None) -> list[Tenant]:
        if not 1 <= limit <= 1000:
            raise InputInvalid("limit must be 1 to 1000", path="/limit")
        return await self.store.list_tenants(limit, after)

    async def update_tenant(self, tenant_id: str, changes: Mapping[str, Any]) -> Tenant:
        """Change ``displayName``, ``disabled`` and/or ``quotas`` (replaced whole)."""
        if not isinstance(changes, Mapping):
            raise InputInvalid("body must be a JSON object")
        unknown = sorted(set(changes) - _EDITABLE)
        if unknown:
            raise InputInvalid(f"{unknown[0]} cannot be changed", path=f"/{unknown[0]}")
        current = await self.get_tenant(tenant_id)
        merged = {**current.model_dump(by_alias=True), **changes, "updatedAt": self.clock.now()}
        try:
            tenant = Tenant.model_validate(merged)
        except ValidationError as exc:
            raise _invalid(exc) from None
        await self.store.update_tenant(tenant)
        self.directory.forget()
        return tenant

    async def set_quotas(self, tenant_id: str, quotas: Mapping[str, Any]) -> Tenant:
        try:
            TenantQuotas.model_validate(quotas)
        except ValidationError as exc:
            raise _invalid(exc, "/quotas") from None
        return await self.update_tenant(tenant_id, {"quotas": quotas})

    async def set_disabled(self, tenant_id: str, disabled: bool = True) -> Tenant:
        return await self.update_tenant(tenant_id, {"disabled": disabled})

    async def issue_key(
        self, tenant_id: str, subject: str, role: str, created_by: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key of ``subject`` with ``role`` in the tenant, and its secret (shown once)."""
        tenant = await self.get_tenant(tenant_id)
        if tenant.disabled:
            raise WorkflowError(f"tenant {tenant.id} is disabled", code="TENANT_DISABLED")
        key_id = "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_ID_LENGTH))
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        try:
            key = ApiKey(
                id=key_id,
                tenant=tenant.id,
                subject=subject,
                role=role,  # type: ignore[arg-type]
                secret_sha256=key_digest(secret),
                created_at=self.clock.now(),
                created_by=created_by,
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        await self.store.add_key(key)
        return key, secret

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        await self.get_tenant(tenant_id)
        return await self.store.list_keys(tenant_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> ApiKey:
        key = await self.store.revoke_key(tenant_id_param(tenant_id), key_id, self.clock.now())
        self.directory.forget()
        return key


class TenantQuotaGuard:
    """The admission checks of tenant quotas (a count, then the call: concurrent calls
    may overshoot a count by how many race; ``docs/tenants.md`` says what bounds hold)."""

    def __init__(
        self,
        directory: TenantDirectory,
        usage: TenantUsage,
        limiter: RateLimiter | None,
        *,
        tenant_of_execution: Callable[[str], Awaitable[str | None]] | None = None,
        retry_after: float = 5.0,
    ) -> None:
        self.directory = directory
        self.usage = usage
        self.limiter = limiter
        self._tenant_of_execution = tenant_of_execution
        self._tenants_by_execution: OrderedDict[str, str] = OrderedDict()
        self._lock = asyncio.Lock()
        self.retry_after = retry_after
        """``Retry-After`` of a start refused by a running or queued count."""

    async def quotas(self, tenant_id: str) -> TenantQuotas | None:
        tenant = await self.directory.tenant(tenant_id)
        return tenant.quotas if tenant is not None else None

    async def admit_workflow(self, tenant_id: str, definition_bytes: int, *, new: int) -> None:
        """Definitions saved in the tenant, the largest of ``definition_bytes``, adding
        ``new`` workflows (0: versions of workflows it has)."""
        quotas = await self.quotas(tenant_id)
        if quotas is None:
            return
        size = quotas.max_definition_bytes
        if size is not None and definition_bytes > size:
            raise QuotaExceeded(
                f"the definition is {definition_bytes} bytes; this tenant's limit is {size}",
                "maxDefinitionBytes",
            )
        cap = quotas.max_workflows
        if new and cap is not None and await self.usage.count_workflows(tenant_id) + new > cap:
            raise QuotaExceeded(
                f"this tenant holds its maximum of {cap} workflow(s); delete one or ask "
                "for a higher quota",
                "maxWorkflows",
            )

    async def admit_start(self, tenant_id: str, input: Any = None) -> None:
        """One execution start in the tenant, with ``input`` (maxStorageBytes, then
        maxRunning, then maxQueued)."""
        quotas = await self.quotas(tenant_id)
        if quotas is None:
            return
        if quotas.max_storage_bytes is not None:
            await self._admit_storage(tenant_id, quotas.max_storage_bytes, input)
        for cap, statuses, name in (
            (quotas.max_running_executions, ACTIVE_STATUSES, "maxRunningExecutions"),
            (quotas.max_queued_executions, QUEUED_STATUSES, "maxQueuedExecutions"),
        ):
            if cap is not None and await self.usage.count_executions(tenant_id, statuses) >= cap:
                raise QuotaExceeded(
                    f"this tenant has its maximum of {cap} execution(s) "
                    f"{'queued' if 'queued' in statuses else 'running'}; retry later",
                    name,
                    retry_after=self.retry_after,
                )

    async def _admit_storage(self, tenant_id: str, cap: int, input: Any) -> None:
        """Refuse a start when the tenant's stored bytes are at ``cap``, or would pass it
        with this input (stored at least twice: the execution and its first step run).
        Not retryable (409): storage is freed by deleting data, not by waiting."""
        used = await self.usage.stored_bytes(tenant_id)
        if used is None:  # a backend that does not count (docs/tenants.md)
            return
        size = len(json.dumps(input, separators=(",", ":"), default=str).encode())
        if used >= cap or used + size > cap:
            raise QuotaExceeded(
                f"this tenant stores {used} byte(s) of executions; its limit is {cap}"
                + (f" and this input is {size} byte(s)" if used < cap else ""),
                "maxStorageBytes",
            )

    async def admit_step(self, execution_id: str, *, tenant: str = "") -> None:
        """One step delivery of ``execution_id`` under its tenant's ``stepsPerSecond``
        (``tenant``: the in-process hint of the engine that enqueued the task; a task
        that came over the wire has none, and the execution is read)."""
        if self.limiter is None or self._tenant_of_execution is None:
            return
        tenant_id = tenant or await self._tenant_of(execution_id)
        quotas = await self.quotas(tenant_id) if tenant_id else None
        if tenant_id is None or quotas is None or quotas.steps_per_second is None:
            return
        rate = quotas.steps_per_second
        limit = RateLimit(rate, quotas.steps_burst or max(1.0, rate))
        decision = await self.limiter.acquire(f"steps:{tenant_id}", limit)
        if not decision.allowed:
            raise QuotaExceeded(
                f"this tenant's step throughput ({rate:g}/s) is used up",
                "stepsPerSecond",
                retry_after=decision.retry_after,
            )

    async def _tenant_of(self, execution_id: str) -> str | None:
        known = self._tenants_by_execution.get(execution_id)
        if known is not None:
            return known
        assert self._tenant_of_execution is not None
        tenant = await self._tenant_of_execution(execution_id)
        if tenant is not None:
            async with self._lock:  # an execution's tenant never changes: cache it
                self._tenants_by_execution[execution_id] = tenant
                while len(self._tenants_by_execution) > 10_000:
                    self._tenants_by_execution.popitem(last=False)
        return tenant
