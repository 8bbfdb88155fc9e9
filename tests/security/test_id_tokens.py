"""End users may present Google-signed ID tokens instead of API keys: the verified email
maps to the tenant and role configured for it; anything else is refused.

Tokens are signed with the edge's dev key (local mode's verifier) or a foreign key, and
checked by google-auth through the same ``TokenVerifier`` as the internal endpoints.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from edge_fixtures import client_for

from shared.api.auth import (
    CombinedAuthenticator,
    IdTokenAuthenticator,
    RegistryAuthenticator,
    hash_api_key,
)
from shared.api.edge import Edge
from shared.api.identity import DevKeys
from shared.api.rest import create_management_app
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge, require_authentication
from shared.errors import InputInvalid
from shared.settings import Settings

AUDIENCE = "https://create.example.run.app"
API = "/api/v1"
FLOW = {"name": "mine", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
KEY, SALT = "k3y", "pepper"


@pytest.fixture
async def token_edge(tmp_path: Path) -> AsyncIterator[Edge]:
    settings = Settings.local_mode(
        db_path=str(tmp_path / "t.db"),
        id_token_audience=AUDIENCE,
        id_token_principals="Alice@Example.com:acme:editor,val@example.com:acme:viewer",
        api_keys=f"{hash_api_key(KEY, SALT)}:ci:beta:owner",
        api_key_salt=SALT,
    )
    runtime: LocalRuntime = build_local(settings)
    await runtime.start()
    edge = build_edge(settings, runtime=runtime)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop()
        await runtime.stop()


@pytest.fixture
async def api(token_edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(token_edge, lifespan=False)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint(edge: Edge, email: str, **claims: object) -> str:
    assert edge.identity.minter is not None
    return edge.identity.minter.mint(AUDIENCE, email, **claims)


async def test_an_id_token_maps_to_its_configured_principal(
    token_edge: Edge, api: httpx.AsyncClient
) -> None:
    assert isinstance(token_edge.authenticator, RegistryAuthenticator)
    assert isinstance(token_edge.authenticator.inner, CombinedAuthenticator)
    alice = bearer(mint(token_edge, "alice@example.com"))
    created = await api.post(f"{API}/workflows", json=FLOW, headers=alice)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    # acme's, and only acme's: the workflow is in acme's store, not beta's
    assert (await token_edge.app.for_tenant("acme").get_workflow(workflow_id)).name == "mine"
    beta = await api.get(f"{API}/workflows/{workflow_id}", headers={"X-API-Key": KEY})
    assert beta.status_code == 404
    # the viewer may read, not write
    val = bearer(mint(token_edge, "val@example.com"))
    assert (await api.get(f"{API}/workflows/{workflow_id}", headers=val)).status_code == 200
    denied = await api.post(f"{API}/workflows", json=FLOW, headers=val)
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "FORBIDDEN")
    # API keys keep working beside ID tokens, in their own tenant
    by_key = await api.post(f"{API}/workflows", json=FLOW, headers=bearer(KEY))
    assert by_key.status_code == 201


async def test_an_unknown_email_is_refused(token_edge: Edge, api: httpx.AsyncClient) -> None:
    stranger = bearer(mint(token_edge, "mallory@example.com"))
    for request in (
        api.get(f"{API}/workflows", headers=stranger),
        api.post(f"{API}/workflows", json=FLOW, headers=stranger),
    ):
        answer = await request
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "UNKNOWN_PRINCIPAL")
    assert (await token_edge.app.for_tenant("acme").list_workflows()).items == []


async def test_forged_id_tokens_are_refused(token_edge: Edge, api: httpx.AsyncClient) -> None:
    assert token_edge.identity.minter is not None
    keys = token_edge.identity.minter
    forged = [
        keys.mint("https://another.example", "alice@example.com"),
        keys.mint(AUDIENCE, "alice@example.com", issued_at=int(time.time()) - 7200),
        keys.mint(AUDIENCE, "alice@example.com", email_verified=False),
        keys.mint(AUDIENCE, "alice@example.com", iss="https://securetoken.evil"),
        DevKeys.generate().mint(AUDIENCE, "alice@example.com"),
        keys.mint(AUDIENCE, "alice@example.com")[:-4] + "AAAA",
    ]
    for token in forged:
        answer = await api.post(f"{API}/workflows", json=FLOW, headers=bearer(token))
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "UNAUTHENTICATED")
    assert (await api.get(f"{API}/workflows")).status_code == 401
    assert (await token_edge.app.for_tenant("acme").list_workflows()).items == []


def test_an_id_token_audience_counts_as_authentication_in_gcp_mode() -> None:
    gcp = {"WFE_BACKEND": "gcp", "WFE_PROJECT": "p", "WFE_EXECUTE_STEP_URL": "https://x"}
    with pytest.raises(InputInvalid, match="WFE_ID_TOKEN_AUDIENCE"):
        require_authentication(Settings.from_env(gcp))
    require_authentication(Settings.from_env({**gcp, "WFE_ID_TOKEN_AUDIENCE": AUDIENCE}))


def test_principal_entries_are_checked_at_startup() -> None:
    from shared.api.auth import authenticator_from_settings, id_token_principals

    for entry in ("alice@example.com:acme", "alice:acme:owner", "a@b.c:acme:god"):
        with pytest.raises(InputInvalid, match="WFE_ID_TOKEN_PRINCIPALS"):
            id_token_principals([entry])
    only_tokens = authenticator_from_settings(
        [],
        "",
        id_token_audiences=[AUDIENCE],
        id_token_principals_entries=["a@b.c:acme:owner"],
        verifier=_NoVerifier(),
    )
    assert isinstance(only_tokens, CombinedAuthenticator)
    with pytest.raises(InputInvalid, match="token verifier"):
        authenticator_from_settings([], "", id_token_audiences=[AUDIENCE])
    assert IdTokenAuthenticator  # the type end users meet


class _NoVerifier:
    async def verify(self, token: str, audiences: object) -> dict[str, object]:
        raise AssertionError("not called")
