"""The authentication and authorization seam every endpoint goes through.

``Authenticator`` turns a request into a ``Principal`` (subject, tenant, roles);
``authorize`` checks an action against the principal's role on a workflow. Local
development uses ``LocalDevAuthenticator`` (everyone is an admin of the tenant named
by ``X-Tenant``, default ``default``, and a platform admin); API keys are checked
against salted hashes (``WFE_API_KEYS``; the tenant ``*`` makes a platform admin,
who manages tenants) or, shaped ``wfe_<id>_<secret>``, against the tenant registry
(``RegistryAuthenticator``, which also refuses every key of a disabled tenant);
Google-signed ID tokens (``IdTokenAuthenticator``) are verified by
``shared.api.identity.TokenVerifier`` and their email mapped to a configured principal.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from starlette.requests import HTTPConnection

from shared.errors import InputInvalid, WorkflowError


class Role(IntEnum):
    """Roles on a workflow, each including the ones below it."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3
    OWNER = 4


ACTION_ROLE: dict[str, Role] = {
    "read": Role.VIEWER,
    "write": Role.EDITOR,
    "execute": Role.EDITOR,
    "operate": Role.EDITOR,
    "delete": Role.ADMIN,
    "admin": Role.ADMIN,
}
"""The least role each action needs."""


class Unauthenticated(WorkflowError):
    code = "UNAUTHENTICATED"


class Forbidden(WorkflowError):
    code = "FORBIDDEN"


class TenantDisabled(WorkflowError):
    """The caller's tenant is disabled in the tenant registry (403)."""

    code = "TENANT_DISABLED"


PLATFORM_TENANT = "*"
"""The tenant of a ``WFE_API_KEYS`` or ``WFE_ID_TOKEN_PRINCIPALS`` entry that makes a
platform admin: a principal that manages tenants (``/api/v1/admin/...``) and belongs to
no tenant (its workflow calls act in the empty tenant ``*``)."""


class UnknownPrincipal(WorkflowError):
    """A valid ID token whose email no ``WFE_ID_TOKEN_PRINCIPALS`` entry names (403)."""

    code = "UNKNOWN_PRINCIPAL"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a subject in one tenant, with a default role and per-workflow roles."""

    subject: str
    tenant: str = "default"
    role: Role = Role.VIEWER
    """Role on every workflow of the tenant unless ``workflow_roles`` says otherwise."""
    workflow_roles: Mapping[str, Role] = field(default_factory=dict)
    platform_admin: bool = False
    """May manage every tenant (create, quotas, keys): ``docs/security.md``."""

    def role_on(self, workflow_id: str | None) -> Role:
        if workflow_id is not None and workflow_id in self.workflow_roles:
            return self.workflow_roles[workflow_id]
        return self.role


class Authenticator(Protocol):
    async def authenticate(self, connection: HTTPConnection) -> Principal: ...


def authorize(principal: Principal, action: str, workflow_id: str | None = None) -> None:
    """Raise FORBIDDEN unless the principal's role allows ``action``."""
    needed = ACTION_ROLE[action]
    if principal.role_on(workflow_id) < needed:
        raise Forbidden(f"{action} needs role {needed.name.lower()} on this workflow")


def authorize_platform(principal: Principal) -> None:
    """Raise FORBIDDEN unless the principal is a platform admin."""
    if not principal.platform_admin:
        raise Forbidden("managing tenants needs a platform admin")


def authorize_tenant_keys(principal: Principal, tenant_id: str) -> None:
    """Raise FORBIDDEN unless the principal may manage the API keys of ``tenant_id``:
    a platform admin, or an owner of that very tenant."""
    if principal.platform_admin:
        return
    if principal.tenant != tenant_id or principal.role < Role.OWNER:
        raise Forbidden("managing a tenant's API keys needs its owner or a platform admin")


class LocalDevAuthenticator:
    """Local mode: no credentials; the tenant comes from ``X-Tenant``."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        tenant = connection.headers.get("x-tenant", "default")
        return Principal(subject="local-dev", tenant=tenant, role=Role.OWNER, platform_admin=True)


def hash_api_key(key: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


class ApiKeyAuthenticator:
    """``Authorization: Bearer <key>`` or ``X-API-Key``, checked against stored hashes."""

    def __init__(self, principals_by_hash: Mapping[str, Principal], salt: str) -> None:
        self._principals = dict(principals_by_hash)
        self._salt = salt

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        key = connection.headers.get("x-api-key", "")
        header = connection.headers.get("authorization", "")
        if not key and header.lower().startswith("bearer "):
            key = header[7:].strip()
        if not key:
            raise Unauthenticated("missing API key")
        digest = hash_api_key(key, self._salt)
        for known, principal in self._principals.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise Unauthenticated("invalid API key")


class ClaimsVerifier(Protocol):
    """Verifies an ID token for one of ``audiences`` (``shared.api.identity``)."""

    async def verify(self, token: str, audiences: Collection[str]) -> Mapping[str, Any]: ...


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class IdTokenAuthenticator:
    """``Authorization: Bearer <Google-signed ID token>``: the verified email names the
    principal (``WFE_ID_TOKEN_PRINCIPALS``); an unknown email is ``UNKNOWN_PRINCIPAL``."""

    def __init__(
        self,
        verifier: ClaimsVerifier,
        audiences: Iterable[str],
        principals_by_email: Mapping[str, Principal],
    ) -> None:
        self._verifier = verifier
        self._audiences = frozenset(audiences)
        self._principals = {email.lower(): p for email, p in principals_by_email.items()}

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing ID token (Authorization: Bearer)")
        claims = await self._verifier.verify(token.strip(), self._audiences)
        email = str(claims["email"]).lower()
        principal = self._principals.get(email)
        if principal is None:
            raise UnknownPrincipal("this identity has no access to the service")
        return principal


class CombinedAuthenticator:
    """API keys and ID tokens: a bearer value shaped like a JWT is an ID token (when
    ID tokens are configured), anything else an API key."""

    def __init__(
        self, api_keys: ApiKeyAuthenticator | None, id_tokens: IdTokenAuthenticator | None
    ) -> None:
        self._api_keys = api_keys
        self._id_tokens = id_tokens

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        header = connection.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        is_key = bool(connection.headers.get("x-api-key")) or not _looks_like_jwt(token)
        if self._id_tokens is not None and not is_key:
            return await self._id_tokens.authenticate(connection)
        if self._api_keys is not None:
            return await self._api_keys.authenticate(connection)
        raise Unauthenticated("missing ID token (Authorization: Bearer)")


def _role(name: str) -> Role | None:
    return Role[name.upper()] if name.lower() in {r.name.lower() for r in Role} else None


def _settings_error(variable: str, index: int, shape: str) -> InputInvalid:
    return InputInvalid(  # the entry itself may hold a secret: never echo it
        f"setting {variable}: entry {index + 1} is not {shape}", code="INVALID_SETTINGS"
    )


def _principal(subject: str, tenant: str, role: Role) -> Principal:
    if tenant == PLATFORM_TENANT:
        return Principal(subject=subject, tenant=tenant, role=Role.VIEWER, platform_admin=True)
    return Principal(subject=subject, tenant=tenant, role=role)


def id_token_principals(entries: Iterable[str]) -> dict[str, Principal]:
    """``<email>:<tenant>:<role>`` entries (``WFE_ID_TOKEN_PRINCIPALS``) by email."""
    roles = "|".join(sorted(role.name.lower() for role in Role))
    principals: dict[str, Principal] = {}
    for index, entry in enumerate(entries):
        parts = entry.split(":")
        role = _role(parts[2]) if len(parts) == 3 and all(parts) else None
        if role is None or "@" not in parts[0]:
            raise _settings_error("WFE_ID_TOKEN_PRINCIPALS", index, f"<email>:<tenant>:<{roles}>")
        principals[parts[0].lower()] = _principal(parts[0], parts[1], role)
    return principals


def authenticator_from_settings(
    api_keys: list[str],
    salt: str,
    *,
    id_token_audiences: Collection[str] = (),
    id_token_principals_entries: Iterable[str] = (),
    verifier: ClaimsVerifier | None = None,
) -> Authenticator:
    """API keys (``hash:subject:tenant:role`` entries) and/or ID tokens (audiences and
    ``email:tenant:role`` entries) when configured, else local dev."""
    if not api_keys and not id_token_audiences:
        return LocalDevAuthenticator()
    keys: ApiKeyAuthenticator | None = None
    if api_keys:
        principals: dict[str, Principal] = {}
        roles = "|".join(sorted(role.name.lower() for role in Role))
        for index, entry in enumerate(api_keys):
            parts = entry.split(":")
            role = _role(parts[3]) if len(parts) == 4 and all(parts) else None
            if role is None:
                raise _settings_error(
                    "WFE_API_KEYS", index, f"<sha256>:<subject>:<tenant>:<{roles}>"
                )
            principals[parts[0]] = _principal(parts[1], parts[2], role)
        keys = ApiKeyAuthenticator(principals, salt)
    tokens: IdTokenAuthenticator | None = None
    if id_token_audiences:
        by_email = id_token_principals(id_token_principals_entries)
        if verifier is None:
            raise InputInvalid(
                "ID tokens need a token verifier (WFE_TOKEN_VERIFIER is none)",
                code="INVALID_SETTINGS",
            )
        tokens = IdTokenAuthenticator(verifier, id_token_audiences, by_email)
    if tokens is None:
        assert keys is not None
        return keys
    return CombinedAuthenticator(keys, tokens)


class TenantRegistry(Protocol):
    """What ``RegistryAuthenticator`` reads (``shared.app.tenants.TenantDirectory``)."""

    async def key(self, key: str) -> Any: ...

    async def tenant(self, tenant_id: str) -> Any: ...


def _presented_key(connection: HTTPConnection) -> str:
    key = connection.headers.get("x-api-key", "")
    header = connection.headers.get("authorization", "")
    if not key and header.lower().startswith("bearer "):
        key = header[7:].strip()
    return key


class RegistryAuthenticator:
    """Keys of the tenant registry (``wfe_<id>_<secret>``) before the configured
    authenticator; then any principal of a disabled tenant is refused.

    The registry is read through a cache (``TenantDirectory``, a few seconds): a key
    revoked or a tenant disabled on another instance is refused within that time.
    """

    def __init__(self, inner: Authenticator, registry: TenantRegistry) -> None:
        self.inner = inner
        self.registry = registry

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        from shared.app.tenants import KEY_PREFIX

        presented = _presented_key(connection)
        if presented.startswith(KEY_PREFIX):
            key = await self.registry.key(presented)
            if key is None:
                raise Unauthenticated("invalid API key")
            principal = Principal(key.subject, key.tenant, Role[str(key.role).upper()])
        else:
            principal = await self.inner.authenticate(connection)
        tenant = await self.registry.tenant(principal.tenant)  # "*" is never registered
        if tenant is not None and tenant.disabled:
            raise TenantDisabled(f"tenant {principal.tenant} is disabled")
        return principal


class _LocalDevWithRegistry(RegistryAuthenticator, LocalDevAuthenticator):
    """Local development mode with the registry: still local mode to whoever asks
    (``GET /session`` says no credentials are required)."""


def with_registry(authenticator: Authenticator, registry: TenantRegistry) -> Authenticator:
    """``authenticator`` behind ``RegistryAuthenticator`` (once)."""
    if isinstance(authenticator, RegistryAuthenticator):
        return authenticator
    if isinstance(authenticator, LocalDevAuthenticator):
        return _LocalDevWithRegistry(authenticator, registry)
    return RegistryAuthenticator(authenticator, registry)
