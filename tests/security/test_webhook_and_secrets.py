"""Issue 10, items 4 and 5: webhook replays and server variables as signing secrets.

- a captured signed request sent again inside the 5-minute window is refused with
  ``409 REPLAYED`` and starts nothing;
- the same captured request re-sent under a new ``Idempotency-Key`` (which once started
  a new execution each time) no longer verifies: ``401 UNAUTHENTICATED``;
- ``secretRef: env:WFE_API_KEY_SALT`` (any variable outside ``WFE_SECRET_``) is refused
  with ``SECRET_REF_FORBIDDEN`` when the workflow is saved, and at run time for one
  stored before the rule, even for someone who knows the salt and signs with it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.api.edge import Edge
from shared.app.secrets import (
    EnvSecretResolver,
    SecretRefForbidden,
    SecretUnavailable,
    default_secret_resolver,
)
from shared.app.service import WorkflowApp
from shared.app.webhooks import sign
from shared.composition import LocalRuntime
from shared.composition.edge import FUNCTION_APPS
from shared.errors import DefinitionInvalid
from shared.models import WorkflowDefinition

SECRET = "whsec-security-suite"
BODY = json.dumps({"order": 42}).encode()
STEPS = [{"id": "record", "type": "transform", "config": {"set": {"seen": "${input}"}}}]


@pytest.fixture
async def hooks(runtime: LocalRuntime, edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    app = FUNCTION_APPS["trigger-handler"](edge)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fn.test") as http:
        yield http
    assert await runtime.queue.join(timeout=5)


async def _webhook_workflow(app: WorkflowApp, secret_ref: str) -> str:
    trigger = {"type": "webhook", "secretRef": secret_ref}
    definition = await app.create_workflow({"name": "hook", "trigger": trigger, "steps": STEPS})
    return definition.id


async def _started(app: WorkflowApp, workflow_id: str) -> int:
    return len((await app.list_executions(workflow_id=workflow_id, limit=100)).items)


def _signed(secret: str, key: str | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()))
    headers = {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": sign(secret, timestamp, BODY, key),
        "Content-Type": "application/json",
    }
    return {**headers, "Idempotency-Key": key} if key else headers


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


@pytest.fixture
async def hook(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WFE_SECRET_SECURITY_HOOK", SECRET)
    return await _webhook_workflow(runtime.app, "env:WFE_SECRET_SECURITY_HOOK")


@pytest.mark.parametrize("key", [None, "order-42-created"], ids=["no-key", "with-key"])
async def test_a_replayed_webhook_is_refused_and_starts_nothing(
    hooks: httpx.AsyncClient, runtime: LocalRuntime, hook: str, key: str | None
) -> None:
    captured = _signed(SECRET, key)
    first = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=captured)
    assert (first.status_code, first.json()["status"]) == (202, "started"), first.text

    for _ in range(3):
        replay = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=captured)
        assert _error(replay) == (409, "REPLAYED"), replay.text

    assert await _started(runtime.app, hook) == 1


async def test_a_captured_webhook_under_a_new_idempotency_key_is_refused(
    hooks: httpx.AsyncClient, runtime: LocalRuntime, hook: str
) -> None:
    captured = _signed(SECRET, "order-42-created")
    first = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=captured)
    assert first.status_code == 202, first.text

    for n in range(3):
        forged = {**captured, "Idempotency-Key": f"attacker-{n}"}
        response = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=forged)
        assert _error(response) == (401, "UNAUTHENTICATED"), response.text
    unkeyed = {k: v for k, v in captured.items() if k != "Idempotency-Key"}
    response = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=unkeyed)
    assert _error(response) == (401, "UNAUTHENTICATED"), response.text

    assert await _started(runtime.app, hook) == 1


async def test_a_re_signed_retry_of_the_same_key_is_a_duplicate(
    hooks: httpx.AsyncClient, runtime: LocalRuntime, hook: str
) -> None:
    first = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=_signed(SECRET, "k-1"))
    headers = _signed(SECRET, "k-1")
    headers["X-Webhook-Timestamp"] = str(int(headers["X-Webhook-Timestamp"]) + 1)
    headers["X-Webhook-Signature"] = sign(SECRET, headers["X-Webhook-Timestamp"], BODY, "k-1")
    retry = await hooks.post(f"/webhooks/{hook}", content=BODY, headers=headers)

    assert [first.json()["status"], retry.json()["status"]] == ["started", "duplicate"]
    assert await _started(runtime.app, hook) == 1


FORBIDDEN_REFS = ["env:WFE_API_KEY_SALT", "env:HOME", "env:WFE_SECRETX", "file:/etc/passwd"]


@pytest.mark.parametrize("secret_ref", FORBIDDEN_REFS)
async def test_server_variables_are_refused_as_webhook_secrets_at_save(
    runtime: LocalRuntime, secret_ref: str
) -> None:
    with pytest.raises(DefinitionInvalid) as refused:
        await _webhook_workflow(runtime.app, secret_ref)
    issues = [(i.code, i.path) for i in refused.value.issues]
    assert issues == [("SECRET_REF_FORBIDDEN", "/trigger/secretRef")]
    assert (await runtime.app.list_workflows()).items == []


@pytest.mark.parametrize("secret_ref", FORBIDDEN_REFS)
async def test_a_stored_workflow_with_a_server_variable_as_secret_starts_nothing(
    hooks: httpx.AsyncClient,
    runtime: LocalRuntime,
    monkeypatch: pytest.MonkeyPatch,
    secret_ref: str,
) -> None:
    """Saved before the rule existed (written to the store directly): refused at run time."""
    name = secret_ref.removeprefix("env:")
    value = os.environ.get(name) or "known-to-the-attacker"
    monkeypatch.setenv(name, value)
    trigger = {"type": "webhook", "secretRef": secret_ref}
    definition = WorkflowDefinition.model_validate(
        {"id": str(uuid.uuid4()), "name": "old", "trigger": trigger, "steps": STEPS}
    )
    await runtime.store.create_workflow(definition, runtime.app.tenant)

    response = await hooks.post(f"/webhooks/{definition.id}", content=BODY, headers=_signed(value))

    assert _error(response) == (500, "SECRET_REF_FORBIDDEN"), response.text
    assert value not in response.text
    assert await _started(runtime.app, definition.id) == 0


async def test_resolvers_refuse_references_outside_the_declared_stores() -> None:
    env = {"WFE_API_KEY_SALT": "salt", "WFE_SECRET_HOOK": "hook-secret"}
    resolver = EnvSecretResolver(env)
    assert await resolver.resolve("env:WFE_SECRET_HOOK") == "hook-secret"
    with pytest.raises(SecretRefForbidden) as refused:
        await resolver.resolve("env:WFE_API_KEY_SALT")
    assert refused.value.code == "SECRET_REF_FORBIDDEN"
    with pytest.raises(SecretRefForbidden):
        await resolver.resolve("WFE_API_KEY_SALT")  # the bare name reaches the same check
    unconfigured = default_secret_resolver()
    with pytest.raises(SecretUnavailable) as sm:
        await unconfigured.resolve("sm:orders-hook")
    assert sm.value.code == "SECRET_UNAVAILABLE"
    assert "Secret Manager" in str(sm.value)
