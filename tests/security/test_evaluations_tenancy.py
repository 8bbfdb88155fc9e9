"""Workflow evaluations never cross tenants, and viewers may read them.

Mallory (owner in ``acme``) runs a guarded llm step (replayed from a recording: no
model is configured); Victor (viewer in ``acme``) reads the evaluations over REST and
GraphQL; Alice (viewer in ``default``) asking for Mallory's workflow gets 404 / null;
without credentials nothing answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_fixtures import _settle, client_for

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.composition import LocalRuntime, build_local
from shared.settings import Settings

pytestmark = pytest.mark.timeout(60)

SALT = "evaluations-tenancy-suite"
API = "/api/v1"
GUARDED = {
    "prompt": "Title, please",
    "guardrails": {
        "validators": [{"cel": "size(output.title) < 10", "name": "short"}],
        "onFail": "continue",
    },
}
WORKFLOW = {"name": "rated", "steps": [{"id": "w0", "type": "llm", "config": GUARDED}]}
GQL = (
    "query($wf: ID!) { workflowEvaluations(workflowId: $wf) "
    "{ executions passRate validators { validator passRate } } }"
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    recording = {
        "workflow": "rated",
        "steps": {"w0": {"turns": [{"content": json.dumps({"title": "a very long title"})}]}},
    }
    (tmp_path / "rated.recording.json").write_text(json.dumps(recording))
    settings = Settings.local_mode(db_path=str(tmp_path / "t.db"), ai_recordings_dir=str(tmp_path))
    local = build_local(settings)
    await local.start()
    try:
        yield local
    finally:
        await _settle(local)
        await local.stop()


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key("alice-key", SALT): Principal("alice", "default", Role.VIEWER),
        hash_api_key("mallory-key", SALT): Principal("mallory", "acme", Role.OWNER),
        hash_api_key("victor-key", SALT): Principal("victor", "acme", Role.VIEWER),
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"{name}-key"}


async def mallory_runs(api: httpx.AsyncClient) -> str:
    created = await api.post(f"{API}/workflows", json=WORKFLOW, headers=key("mallory"))
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    for _ in range(2):
        started = await api.post(
            f"{API}/workflows/{workflow_id}/execute", json={}, headers=key("mallory")
        )
        assert started.status_code == 202, started.text
    for _ in range(500):
        seen = await api.get(f"{API}/workflows/{workflow_id}/evaluations", headers=key("victor"))
        assert seen.status_code == 200, seen.text
        if seen.json()["executions"] == 2:
            return workflow_id
        await asyncio.sleep(0.02)
    raise AssertionError(f"mallory's executions were not evaluated: {seen.text}")


async def graphql(api: httpx.AsyncClient, who: str, workflow_id: str) -> Any:
    answer = await api.post(
        f"{API}/graphql",
        json={"query": GQL, "variables": {"wf": workflow_id}},
        headers=key(who),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_evaluations_are_the_tenants_own(api: httpx.AsyncClient) -> None:
    workflow_id = await mallory_runs(api)
    url = f"{API}/workflows/{workflow_id}/evaluations"
    body = (await api.get(url, headers=key("victor"))).json()
    assert body["passRate"] == 0.0 and body["meanScore"] == 0.0
    assert body["validators"] == [
        {
            "stepId": "w0",
            "validator": "short",
            "count": 2,
            "passed": 0,
            "passRate": 0.0,
            "meanScore": 0.0,
        }
    ]
    assert body["steps"][0]["actions"] == {"continue": 2}
    viewer = await graphql(api, "victor", workflow_id)
    assert viewer["data"]["workflowEvaluations"] == {
        "executions": 2,
        "passRate": 0.0,
        "validators": [{"validator": "short", "passRate": 0.0}],
    }
    # another tenant: not found, whatever it tries
    assert (await api.get(url, headers=key("alice"))).status_code == 404
    assert (await api.get(url, params={"tenant": "acme"}, headers=key("alice"))).status_code == 404
    outsider = await graphql(api, "alice", workflow_id)
    assert outsider["data"]["workflowEvaluations"] is None
    assert (await api.get(url)).status_code == 401
