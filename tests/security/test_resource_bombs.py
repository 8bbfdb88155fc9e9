"""Resource bombs (issue 10, items 10 and 11): refused fast, and the server keeps answering.

- a 435-byte YAML "billion laughs" (nine levels of nine aliases): it once stalled
  ``POST /workflows`` for 61 s and ended in a MemoryError with 2.2 GB in use;
- a CEL expression of nested comprehensions over a 130-element list: it once froze
  the server for 58 s (``/health`` did not answer, timeouts did not apply).

While each runs, ``GET /health`` on the same app must answer within 1 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

from shared.engine.validation import parse_documents
from shared.errors import InputInvalid

API = "/api/v1"
YAML = {"Content-Type": "application/yaml"}
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def _alias_bomb() -> str:
    lines = ["name: laughs", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    return text + "#" * (434 - len(text)) + "\n"


ALIAS_BOMB = _alias_bomb()
THREE_DEEP = "${input.xs.map(a, input.xs.map(b, input.xs.map(c, a + b + c)))}"
TWO_DEEP = "${input.xs.map(a, input.xs.map(b, a + b))}"


def _flow(expression: str, **step: Any) -> dict[str, Any]:
    first = {"id": "boom", "type": "transform", "config": {"set": {"x": expression}}}
    last = {"id": "after", "type": "transform", "config": {"set": {"done": True}}}
    return {"name": "cel-bomb", "steps": [{**first, **step}, *([last] if step else [])]}


async def _with_health(api: httpx.AsyncClient, attack: Awaitable[Any]) -> tuple[Any, float]:
    """Run ``attack`` as a task; the time a concurrent ``GET /health`` took to answer."""
    task = asyncio.ensure_future(attack)
    await asyncio.sleep(0)
    started = time.monotonic()
    health = await asyncio.wait_for(api.get("/health"), timeout=5)
    took = time.monotonic() - started
    assert health.status_code == 200
    return await asyncio.wait_for(task, timeout=5), took


def test_the_bomb_is_the_435_byte_one() -> None:
    assert len(ALIAS_BOMB.encode()) == 435
    assert ALIAS_BOMB.count("*") == 72


@pytest.mark.parametrize("path", [f"{API}/workflows", f"{API}/workflows/import"])
async def test_yaml_alias_bomb_is_refused_fast_and_stores_nothing(
    api: httpx.AsyncClient, path: str
) -> None:
    started = time.monotonic()
    response, health_took = await _with_health(
        api, api.post(path, content=ALIAS_BOMB, headers=YAML)
    )
    assert time.monotonic() - started < 1
    assert health_took < 1
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert "alias" in error["message"]
    listed = await api.get(f"{API}/workflows")
    assert listed.json()["items"] == []


def test_yaml_alias_bomb_is_refused_by_parse_documents() -> None:
    started = time.monotonic()
    with pytest.raises(InputInvalid, match="alias") as caught:
        parse_documents(ALIAS_BOMB, "bomb.yaml")
    assert caught.value.code == "INVALID_INPUT"
    assert time.monotonic() - started < 1


def test_a_single_anchor_is_refused_too_and_plain_yaml_still_loads() -> None:
    with pytest.raises(InputInvalid, match="alias"):
        parse_documents("name: x\nsteps: &s []\n", "one.yaml")
    assert parse_documents("name: x\n---\nname: y\n", "two.yaml") == [{"name": "x"}, {"name": "y"}]


def test_a_yaml_file_nested_past_the_limit_is_refused() -> None:
    with pytest.raises(InputInvalid, match="nested deeper than 100"):
        parse_documents("a: " + "[" * 101 + "]" * 101, "deep.yaml")


async def test_cel_comprehensions_nested_three_deep_are_refused_at_save_time(
    api: httpx.AsyncClient,
) -> None:
    response, health_took = await _with_health(
        api, api.post(f"{API}/workflows", json=_flow(THREE_DEEP))
    )
    assert health_took < 1
    assert response.status_code == 422, response.text
    issues = response.json()["error"]["errors"]
    assert [(i["code"], i["path"]) for i in issues] == [
        ("EXPRESSION_LIMIT", "/steps/0/config/set/x")
    ]
    assert (await api.get(f"{API}/workflows")).json()["items"] == []


async def _finished(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await api.get(f"{API}/executions/{execution_id}")).json()
        if body["status"] in TERMINAL:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution {execution_id} still running")


async def _steps(api: httpx.AsyncClient, execution_id: str) -> dict[str, dict[str, Any]]:
    listed = (await api.get(f"{API}/executions/{execution_id}/steps")).json()
    return {run["stepId"]: run for run in listed["items"]}


async def _run_bomb(api: httpx.AsyncClient, **step: Any) -> tuple[dict[str, Any], float]:
    created = await api.post(f"{API}/workflows", json=_flow(TWO_DEEP, **step))
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    started = await api.post(
        f"{API}/workflows/{workflow_id}/execute", json={"input": {"xs": list(range(130))}}
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]
    finished, health_took = await _with_health(api, _finished(api, execution_id))
    return finished, health_took


async def test_cel_bomb_within_the_nesting_limit_fails_its_step_with_expression_limit(
    api: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    finished, health_took = await _run_bomb(api)
    assert health_took < 1
    assert time.monotonic() - started < 3
    assert finished["status"] == "failed"
    assert finished["errorInfo"]["code"] == "EXPRESSION_LIMIT"
    boom = (await _steps(api, finished["id"]))["boom"]
    assert boom["error"]["code"] == "EXPRESSION_LIMIT"
    assert boom["attempt"] == 1


async def test_cel_bomb_step_follows_its_on_error(api: httpx.AsyncClient) -> None:
    finished, _ = await _run_bomb(api, onError={"strategy": "continue"}, nextSteps=["after"])
    assert finished["status"] == "succeeded"
    runs = await _steps(api, finished["id"])
    assert runs["boom"]["error"]["code"] == "EXPRESSION_LIMIT"
    assert runs["after"]["status"] == "succeeded"
