"""The authentication and authorization seam every endpoint goes through.

``Authenticator`` turns a request into a ``Principal`` (subject, tenant, roles);
``authorize`` checks an action against the principal's role on a workflow. Local
development uses ``LocalDevAuthenticator`` (everyone is an admin of the tenant named
by ``X-Tenant``, default ``default``); API keys are checked against salted hashes.
The hardening (Google ID tokens, OIDC for internal endpoints) plugs in here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

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


def authenticator_from_settings(api_keys: list[str], salt: str) -> Authenticator:
    """API keys when configured (``hash:subject:tenant:role`` entries), else local dev."""
    if not api_keys:
        return LocalDevAuthenticator()
    principals: dict[str, Principal] = {}
    for index, entry in enumerate(api_keys):
        parts = entry.split(":")
        roles = {role.name.lower() for role in Role}
        if len(parts) != 4 or not all(parts) or parts[3].lower() not in roles:
            raise InputInvalid(  # the entry itself may hold a secret: never echo it
                f"setting WFE_API_KEYS: entry {index + 1} is not <sha256>:<subject>:<tenant>:"
                f"<{'|'.join(sorted(roles))}>",
                code="INVALID_SETTINGS",
            )
        digest, subject, tenant, role = parts
        principals[digest] = Principal(subject=subject, tenant=tenant, role=Role[role.upper()])
    return ApiKeyAuthenticator(principals, salt)
