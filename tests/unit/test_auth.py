"""The auth seam: API keys from settings, roles, local development mode."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from shared.api.auth import (
    Forbidden,
    LocalDevAuthenticator,
    Role,
    Unauthenticated,
    authenticator_from_settings,
    authorize,
    hash_api_key,
)


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})


async def test_api_keys_from_settings() -> None:
    entry = f"{hash_api_key('s3cret', 'pepper')}:ci-bot:acme:viewer"
    auth = authenticator_from_settings([entry], "pepper")
    principal = await auth.authenticate(_request({"Authorization": "Bearer s3cret"}))
    assert (principal.subject, principal.tenant, principal.role) == ("ci-bot", "acme", Role.VIEWER)
    assert (await auth.authenticate(_request({"X-API-Key": "s3cret"}))).subject == "ci-bot"
    for headers in ({}, {"X-API-Key": "wrong"}):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(_request(headers))
    authorize(principal, "read")
    with pytest.raises(Forbidden):
        authorize(principal, "write")


async def test_local_dev_mode_uses_the_tenant_header() -> None:
    auth = authenticator_from_settings([], "")
    assert isinstance(auth, LocalDevAuthenticator)
    principal = await auth.authenticate(_request({"X-Tenant": "beta"}))
    assert principal.tenant == "beta" and principal.role == Role.OWNER
