"""An approval only its approvers can give: a ``wait_for_event`` step's ``answeredBy``.

Maria and Bob are both editors of the tenant (the events endpoint's role). The step
waiting for ``approval`` names Maria alone: Bob's approval is refused (403
``EVENT_SENDER_NOT_ALLOWED``) over REST and GraphQL, the execution keeps waiting and
no signal is stored for a later wait to consume; Maria's goes through. An event no
step restricts stays open to every editor; a viewer may send none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from edge_fixtures import client_for

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app

pytestmark = pytest.mark.timeout(30)

SALT = "event-answerers-suite"
API = "/api/v1"
WORKFLOW = {
    "name": "guarded-approval",
    "steps": [
        {
            "id": "approve",
            "type": "wait_for_event",
            "config": {"event": "approval", "timeoutSeconds": 600, "answeredBy": ["maria"]},
            "nextSteps": ["note"],
        },
        {
            "id": "note",
            "type": "wait_for_event",
            "config": {"event": "note", "timeoutSeconds": 600},
        },
    ],
}
GQL = (
    'mutation($id: ID!) { sendEvent(executionId: $id, name: "approval", payload: {}) {'
    " __typename ... on EventDelivery { delivered } ... on UserError { code } } }"
)


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key("maria-key", SALT): Principal("maria", "default", Role.EDITOR),
        hash_api_key("bob-key", SALT): Principal("bob", "default", Role.EDITOR),
        hash_api_key("vera-key", SALT): Principal("vera", "default", Role.VIEWER),
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"{name}-key"}


async def waiting_on(api: httpx.AsyncClient, execution_id: str, step: str) -> dict[str, Any]:
    for _ in range(500):
        body = (await api.get(f"{API}/executions/{execution_id}", headers=key("bob"))).json()
        if any(s["stepId"] == step and s["status"] == "waiting" for s in body["steps"]):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{execution_id} did not wait at {step}")


async def send(api: httpx.AsyncClient, who: str, execution_id: str, name: str) -> httpx.Response:
    return await api.post(
        f"{API}/executions/{execution_id}/events",
        json={"name": name, "payload": {"by": who}},
        headers=key(who),
    )


async def test_only_the_named_approver_may_answer(api: httpx.AsyncClient) -> None:
    created = await api.post(f"{API}/workflows", json=WORKFLOW, headers=key("maria"))
    assert created.status_code == 201, created.text
    started = await api.post(
        f"{API}/workflows/{created.json()['id']}/execute", json={}, headers=key("bob")
    )
    execution_id = started.json()["id"]
    await waiting_on(api, execution_id, "approve")

    refused = await send(api, "bob", execution_id, "approval")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "EVENT_SENDER_NOT_ALLOWED"
    graphql = await api.post(
        "/graphql", json={"query": GQL, "variables": {"id": execution_id}}, headers=key("bob")
    )
    assert "EVENT_SENDER_NOT_ALLOWED" in graphql.text, graphql.text
    viewer = await send(api, "vera", execution_id, "note")
    assert viewer.status_code == 403, viewer.text
    still = await waiting_on(api, execution_id, "approve")
    assert still["status"] == "waiting"

    accepted = await send(api, "maria", execution_id, "approval")
    assert accepted.status_code == 202, accepted.text
    after = await waiting_on(api, execution_id, "note")
    [approve] = [s for s in after["steps"] if s["stepId"] == "approve"]
    assert approve["output"]["payload"] == {"by": "maria"}, "bob's refused event left no trace"

    anyone = await send(api, "bob", execution_id, "note")  # no answeredBy on this one
    assert anyone.status_code == 202, anyone.text
    for _ in range(500):
        body = (await api.get(f"{API}/executions/{execution_id}", headers=key("bob"))).json()
        if body["status"] == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert body["status"] == "succeeded"


async def test_answered_by_must_name_someone(api: httpx.AsyncClient) -> None:
    for answered_by, pointer in (([], "/steps/0/config/answeredBy"), ("maria", None)):
        steps = [
            {
                **WORKFLOW["steps"][0],
                "config": {  # type: ignore[dict-item]
                    "event": "approval",
                    "timeoutSeconds": 60,
                    "answeredBy": answered_by,
                },
            }
        ]
        body = {"name": f"bad-{answered_by!s}", "steps": steps}
        response = await api.post(f"{API}/workflows", json=body, headers=key("maria"))
        assert response.status_code == 422, response.text
        paths = [e["path"] for e in response.json()["error"].get("errors", [])]
        assert any(p.startswith("/steps/0/config/answeredBy") for p in paths), paths
        if pointer:
            assert pointer in paths
