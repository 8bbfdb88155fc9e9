"""The authentication and authorization seam every endpoint goes through.

``Authenticator`` turns a request into a ``Principal`` (subject, tenant, roles);
``authorize`` checks an action against the principal's role on a workflow. Local
development uses ``LocalDevAuthenticator`` (everyone is an admin of the tenant named
by ``X-Tenant``, default ``default``); API keys are checked against salted hashes;
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


class LocalDevAuthenticator:
    """Local mode: no credentials; the tenant comes from ``X-Tenant``."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        tenant = connection.headers.get("x-tenant", "default")
        return Principal(subject="local-dev", tenant=tenant, role=Role.OWNER)


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


def id_token_principals(entries: Iterable[str]) -> dict[str, Principal]:
    """``<email>:<tenant>:<role>`` entries (``WFE_ID_TOKEN_PRINCIPALS``) by email."""
    roles = "|".join(sorted(role.name.lower() for role in Role))
    principals: dict[str, Principal] = {}
    for index, entry in enumerate(entries):
        parts = entry.split(":")
        role = _role(parts[2]) if len(parts) == 3 and all(parts) else None
        if role is None or "@" not in parts[0]:
            raise _settings_error("WFE_ID_TOKEN_PRINCIPALS", index, f"<email>:<tenant>:<{roles}>")
        principals[parts[0].lower()] = Principal(subject=parts[0], tenant=parts[1], role=role)
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
            principals[parts[0]] = Principal(subject=parts[1], tenant=parts[2], role=role)
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
