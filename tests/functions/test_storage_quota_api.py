"""``maxStorageBytes`` through the doors: the admin REST API and GraphQL set and show it,
the CLI takes it, and a start past it answers 409 QUOTA_EXCEEDED (no Retry-After)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.cli.main import main

API = "/api/v1"
TENANTS = f"{API}/admin/tenants"
FLOW = {"name": "s", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
BIG = 5 * 10**9
"""Past GraphQL's 32-bit Int: the field is a Float there."""


async def test_rest_sets_the_quota_and_a_start_past_it_is_409(api: httpx.AsyncClient) -> None:
    made = await api.post(TENANTS, json={"id": "acme", "quotas": {"maxStorageBytes": BIG}})
    assert made.status_code == 201, made.text
    assert made.json()["quotas"] == {"maxStorageBytes": BIG}
    bad = await api.put(f"{TENANTS}/acme/quotas", json={"maxStorageBytes": -5})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_FAILED"
    set_small = await api.put(f"{TENANTS}/acme/quotas", json={"maxStorageBytes": 2000})
    assert set_small.json()["quotas"] == {"maxStorageBytes": 2000}
    acme = {"X-Tenant": "acme"}
    body = {**FLOW, "name": f"s-{uuid.uuid4().hex[:8]}"}
    flow = (await api.post(f"{API}/workflows", json=body, headers=acme)).json()["id"]
    huge = {"input": {"blob": "h" * 5000}}
    refused = await api.post(f"{API}/workflows/{flow}/execute", json=huge, headers=acme)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert refused.json()["error"]["details"]["quota"] == "maxStorageBytes"
    assert "retry-after" not in refused.headers
    small = await api.post(f"{API}/workflows/{flow}/execute", json={}, headers=acme)
    assert small.status_code == 202, small.text


async def test_graphql_sets_and_shows_the_quota_past_32_bits(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/graphql",
        json={
            "query": 'mutation($q: TenantQuotasInput) { createTenant(id: "big", quotas: $q)'
            " { quotas { maxStorageBytes maxWorkflows } } }",
            "variables": {"q": {"maxStorageBytes": BIG}},
        },
    )
    body: dict[str, Any] = answer.json()
    assert body["data"]["createTenant"]["quotas"] == {
        "maxStorageBytes": BIG,
        "maxWorkflows": None,
    }
    fraction = await api.post(
        "/graphql",
        json={
            "query": 'mutation { setTenantQuotas(id: "big", quotas: {maxStorageBytes: 1.5})'
            " { id } }"
        },
    )
    assert fraction.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_the_cli_sets_the_quota(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "wfe.db")
    argv = ["tenants", "create", "acme", "--quota", f"maxStorageBytes={BIG}", "--db", db]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    assert json.loads(capsys.readouterr().out)["quotas"] == {"maxStorageBytes": BIG}
