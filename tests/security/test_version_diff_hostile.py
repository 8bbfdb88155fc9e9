"""Hostile versions diffed by ``GET /workflows/{id}/versions/{a}/diff/{b}``: nesting near
the parser's limit, floods of changed keys, odd ids. The diff answers quickly with
bounded output (``truncated``), and never reaches another tenant's versions."""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared.app.version_diff import MAX_CHANGES, MAX_DEPTH

API = "/api/v1"


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": [value]}
    return value


def _definition(variables: dict[str, Any], name: str = "hostile-diff") -> dict[str, Any]:
    return {
        "name": name,
        "variables": variables,
        "steps": [{"id": "a", "type": "transform", "config": {"set": {"x": 1}}}],
    }


async def _two_versions(
    api: httpx.AsyncClient, first: dict[str, Any], second: dict[str, Any]
) -> str:
    created = await api.post(f"{API}/workflows", json=first)
    assert created.status_code == 201, created.text[:500]
    workflow_id: str = created.json()["id"]
    updated = await api.put(f"{API}/workflows/{workflow_id}", json=second)
    assert updated.status_code == 200, updated.text[:500]
    return workflow_id


async def test_a_flood_of_changed_keys_is_capped(api: httpx.AsyncClient) -> None:
    count = MAX_CHANGES * 3
    before = _definition({f"v{i}": i for i in range(count)})
    after = _definition({f"v{i}": -i - 1 for i in range(count)})
    workflow_id = await _two_versions(api, before, after)
    started = time.monotonic()
    response = await api.get(f"{API}/workflows/{workflow_id}/versions/1/diff/2")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body["truncated"] is True and body["identical"] is False
    assert len(body["variables"]) == MAX_CHANGES
    assert len(response.content) < 2_000_000
    assert elapsed < 10, elapsed


async def test_the_deepest_storable_nesting_is_diffed_exactly(api: httpx.AsyncClient) -> None:
    """Saving refuses definitions nested deeper than 32 (TOO_DEEP): what can be stored is
    within the diff's own depth limit, so the change is found at its leaf."""
    refused = await api.post(f"{API}/workflows", json=_definition({"deep": _nested(40, 1)}))
    assert refused.status_code == 422
    depth = 14  # two levels each: about 31 deep in the stored document
    workflow_id = await _two_versions(
        api,
        _definition({"deep": _nested(depth, 1)}),
        _definition({"deep": _nested(depth, 2)}),
    )
    response = await api.get(f"{API}/workflows/{workflow_id}/versions/1/diff/2")
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body["truncated"] is False
    (change,) = body["variables"]
    assert change == {
        "path": "/deep" + "/k/0" * depth,
        "kind": "changed",
        "before": 1,
        "after": 2,
    }
    assert change["path"].count("/") < MAX_DEPTH


async def test_odd_ids_and_versions_are_404_or_400_never_500(api: httpx.AsyncClient) -> None:
    workflow_id = await _two_versions(
        api, _definition({"a": 1}, "odd-ids"), _definition({"a": 2}, "odd-ids")
    )
    for path in (
        f"{API}/workflows/..%2F..%2Fadmin/versions/1/diff/2",
        f"{API}/workflows/%00/versions/1/diff/2",
        f"{API}/workflows/{'x' * 5000}/versions/1/diff/2",
        f"{API}/workflows/{workflow_id}/versions/-1/diff/2",
        f"{API}/workflows/{workflow_id}/versions/1/diff/99999999999999999999",
        f"{API}/workflows/{workflow_id}/versions/1e3/diff/2",
    ):
        response = await api.get(path)
        assert response.status_code in (400, 404), (path[:80], response.status_code)
        assert "error" in response.json()


async def test_another_tenant_cannot_diff_by_guessing_the_id(api: httpx.AsyncClient) -> None:
    secret = "secret-value-7c1f"
    workflow_id = await _two_versions(
        api, _definition({"token": secret}, "private"), _definition({"token": "x"}, "private")
    )
    for tenant in ("globex", "default2"):
        response = await api.get(
            f"{API}/workflows/{workflow_id}/versions/1/diff/2", headers={"X-Tenant": tenant}
        )
        assert response.status_code == 404
        assert secret not in response.text
