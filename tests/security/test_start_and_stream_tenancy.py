"""Session 12 moved two things behind the edge; neither may cross a tenant.

- A start no longer parses the workflow's head: it reads the head's version in the
  caller's tenant, then takes that version from the engine's cache of versions, which
  another tenant's starts have warmed. Alice (editor in ``default``) starts Mallory's
  workflow (``acme``) by its id, by its id and version, with an ``X-Tenant`` header and
  with Mallory's execution id: every way answers 404 and writes nothing of hers.
- A workflow SSE stream names, in every frame's ``id``, a resume cursor built from the
  executions it delivered (the 50 newest, their ids percent-encoded and remembered
  process-wide). Alice resumes her workflow's stream with a cursor naming Mallory's
  execution and ids made to break the cursor's syntax: the stream replays none of
  Mallory's events, its cursor never names her execution, and hostile ids (commas,
  colons, percent signs) come back as the same ids, never as extra entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from edge_fixtures import client_for

from shared.api._subscription import format_cursor, parse_cursor
from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.api.streams import SSE_CURSOR_EXECUTIONS

pytestmark = pytest.mark.timeout(30)

SALT = "start-stream-tenancy"
API = "/api/v1"
STEPS = [{"id": "only", "type": "transform", "config": {"set": {"done": True}}}]


@pytest.fixture
def authenticator() -> ApiKeyAuthenticator:
    principals = {
        hash_api_key("alice-key", SALT): Principal("alice", "default", Role.EDITOR),
        hash_api_key("mallory-key", SALT): Principal("mallory", "acme", Role.OWNER),
    }
    return ApiKeyAuthenticator(principals, SALT)


@pytest.fixture
async def api(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_management_app(edge, lifespan=False)) as client:
        yield client


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": f"{name}-key"}


async def _workflow(api: httpx.AsyncClient, who: str, name: str) -> str:
    created = await api.post(
        f"{API}/workflows", json={"name": name, "steps": STEPS}, headers=key(who)
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _start(api: httpx.AsyncClient, who: str, workflow_id: str, **body: object) -> str:
    started = await api.post(
        f"{API}/workflows/{workflow_id}/execute", json={"input": {}, **body}, headers=key(who)
    )
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


async def _finished(api: httpx.AsyncClient, who: str, execution_id: str) -> None:
    for _ in range(500):
        got = (await api.get(f"{API}/executions/{execution_id}", headers=key(who))).json()
        if got["status"] == "succeeded":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} did not finish")


async def test_a_start_cannot_reach_another_tenants_workflow_through_the_cache(
    api: httpx.AsyncClient,
) -> None:
    theirs = await _workflow(api, "mallory", "acme-only")
    warmed = await _start(api, "mallory", theirs)  # version 1 is now in the engine's cache
    await _finished(api, "mallory", warmed)

    attempts: list[tuple[dict[str, object], dict[str, str]]] = [
        ({}, {}),
        ({"version": 1}, {}),
        ({}, {"X-Tenant": "acme"}),
        ({"executionId": warmed}, {}),
        ({"version": 1, "executionId": "alice-chosen-id"}, {"X-Tenant": "acme"}),
    ]
    for body, headers in attempts:
        refused = await api.post(
            f"{API}/workflows/{theirs}/execute",
            json={"input": {}, **body},
            headers={**key("alice"), **headers},
        )
        assert refused.status_code == 404, (body, headers, refused.text)
        assert refused.json()["error"]["code"] == "NOT_FOUND"
    listed = (await api.get(f"{API}/executions", headers=key("alice"))).json()
    assert listed["items"] == []
    own = (await api.get(f"{API}/executions", headers=key("mallory"))).json()
    assert [item["id"] for item in own["items"]] == [warmed]


HOSTILE_IDS = ["a,b", "x:99", "%2C", "@", "e%3A1,@:5", "é/..", "a" * 200]


def test_hostile_execution_ids_round_trip_through_the_remembered_cursor() -> None:
    cursor = {execution_id: seq for seq, execution_id in enumerate(HOSTILE_IDS, start=1)}
    for _ in range(2):  # the second time from the remembered encodings
        text = format_cursor(cursor)
        assert text.count(",") == len(HOSTILE_IDS) - 1
        assert parse_cursor(text) == cursor


async def test_a_workflow_stream_cursor_never_names_another_tenants_execution(
    api: httpx.AsyncClient, edge: Edge
) -> None:
    theirs = await _workflow(api, "mallory", "acme-only")
    their_execution = await _start(api, "mallory", theirs)
    await _finished(api, "mallory", their_execution)
    ours = await _workflow(api, "alice", "default-only")
    resume = format_cursor({their_execution: 0, **dict.fromkeys(HOSTILE_IDS, 0)})

    async with edge.broker.open(tenant="default", workflow_id=ours, cursor=resume) as stream:
        # Nothing of theirs was taken ("@" is the cursor's own since-marker).
        assert set(parse_cursor(stream.cursor(SSE_CURSOR_EXECUTIONS))) <= {"@"}
        started = [await _start(api, "alice", ours) for _ in range(3)]
        seen: set[str] = set()
        while len(seen) < 3 or not all(
            f"{execution_id}:" in stream.cursor(SSE_CURSOR_EXECUTIONS) for execution_id in seen
        ):
            event = await asyncio.wait_for(stream.next(timeout=5), 10)
            assert event is not None and event.execution_id in started
            seen.add(event.execution_id)
            named = parse_cursor(stream.cursor(SSE_CURSOR_EXECUTIONS))
            assert their_execution not in named
            assert set(named) - {"@"} <= set(started)
        assert seen == set(started)
