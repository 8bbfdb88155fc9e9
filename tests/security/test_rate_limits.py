"""Issue 10, rate limits: a burst beyond a limit is answered 429 ``RATE_LIMITED`` with
``Retry-After``, and nothing is started past the limit, whichever door it comes by.

- execution starts per tenant: REST, GraphQL and a webhook share one bucket; tenant B
  is unaffected by tenant A's burst; a tenant's own limit (``WFE_TENANT_LIMITS``) wins;
- API requests per principal and per tenant, on REST and on GraphQL;
- webhook calls per workflow and source;
- the bucket arithmetic, and SQLite buckets shared by two limiters on one file.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from _served import ALICE, API, BOB, ERIN, FLOW, Served, served

from shared.adapters.memory_limits import MemoryRateLimiter
from shared.adapters.sqlite_limits import SqliteRateLimiter
from shared.app.quotas import Quotas, RateLimited
from shared.app.webhooks import sign
from shared.ports import RateLimit
from shared.ports.limits import take
from shared.settings import LimitSettings

SLOW = 0.001
"""A refill rate so slow that no token comes back during a test."""


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert int(response.headers["Retry-After"]) >= 1


async def _execute(s: Served, workflow_id: str, headers: dict[str, str]) -> httpx.Response:
    return await s.api.post(f"{API}/workflows/{workflow_id}/execute", json={}, headers=headers)


async def test_a_burst_of_starts_beyond_the_limit_is_refused_and_starts_nothing(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, limit_start_rps=SLOW, limit_start_burst=3) as s:
        flow = await s.create(ALICE)
        answers = await asyncio.gather(*(_execute(s, flow, ALICE) for _ in range(8)))

        assert sorted(a.status_code for a in answers) == [202] * 3 + [429] * 5
        for answer in answers:
            if answer.status_code == 429:
                _refused(answer)
        assert await s.executions("tenant-a") == 3
        audit = await s.api.get(f"{API}/audit", params={"action": "execution.start"}, headers=ALICE)
        outcomes = sorted(e["outcome"] for e in audit.json()["items"])
        assert outcomes == ["RATE_LIMITED"] * 5 + ["ok"] * 3


async def test_starts_are_limited_per_tenant(tmp_path: Path) -> None:
    async with served(tmp_path, limit_start_rps=SLOW, limit_start_burst=2) as s:
        mine, theirs = await s.create(ALICE), await s.create(BOB)
        for _ in range(4):
            await _execute(s, mine, ALICE)
        _refused(await _execute(s, mine, ERIN))  # the tenant's bucket, not the caller's

        for _ in range(2):
            assert (await _execute(s, theirs, BOB)).status_code == 202
        assert (await s.executions("tenant-a"), await s.executions("tenant-b")) == (2, 2)


async def test_a_tenants_own_limit_overrides_the_default(tmp_path: Path) -> None:
    own = {"tenant-b": {"start_burst": 5}}
    async with served(tmp_path, limit_start_rps=SLOW, limit_start_burst=1, tenant_limits=own) as s:
        mine, theirs = await s.create(ALICE), await s.create(BOB)
        a = [await _execute(s, mine, ALICE) for _ in range(3)]
        b = [await _execute(s, theirs, BOB) for _ in range(7)]

        assert [r.status_code for r in a] == [202, 429, 429]
        assert [r.status_code for r in b] == [202] * 5 + [429] * 2


async def test_graphql_and_webhook_starts_share_the_tenants_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFE_SECRET_LIMITED_HOOK", "whsec-limits")
    hooked = {**FLOW, "trigger": {"type": "webhook", "secretRef": "env:WFE_SECRET_LIMITED_HOOK"}}
    async with served(tmp_path, limit_start_rps=SLOW, limit_start_burst=2) as s:
        flow = await s.create(ALICE, hooked)
        assert (await _execute(s, flow, ALICE)).status_code == 202
        mutation = "mutation($id: ID!) { executeWorkflow(id: $id, input: {}) { id } }"
        query = {"query": mutation, "variables": {"id": flow}}
        first = await s.api.post("/graphql", json=query, headers=ALICE)
        assert first.json()["data"]["executeWorkflow"]["id"], first.text

        second = await s.api.post("/graphql", json=query, headers=ALICE)
        assert second.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED", second.text
        body = json.dumps({"n": 1}).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": sign("whsec-limits", stamp, body),
            "Content-Type": "application/json",
        }
        hooked_call = await s.hooks.post(
            f"/webhooks/{flow}?tenant=tenant-a", content=body, headers=headers
        )
        _refused(hooked_call)
        assert await s.executions("tenant-a") == 2


async def test_webhook_calls_are_limited_per_workflow_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFE_SECRET_BUSY_HOOK", "whsec-busy")
    hooked = {**FLOW, "trigger": {"type": "webhook", "secretRef": "env:WFE_SECRET_BUSY_HOOK"}}
    async with served(tmp_path, limit_webhook_rps=SLOW, limit_webhook_burst=2) as s:
        flow = await s.create(ALICE, hooked)
        answers = []
        for n in range(4):
            body = json.dumps({"n": n}).encode()
            stamp = str(int(time.time()))
            headers = {
                "X-Webhook-Timestamp": stamp,
                "X-Webhook-Signature": sign("whsec-busy", stamp, body, f"k-{n}"),
                "Idempotency-Key": f"k-{n}",
                "Content-Type": "application/json",
            }
            answers.append(
                await s.hooks.post(
                    f"/webhooks/{flow}?tenant=tenant-a", content=body, headers=headers
                )
            )

        assert [a.status_code for a in answers] == [202, 202, 429, 429]
        _refused(answers[2])
        assert await s.executions("tenant-a") == 2


async def test_requests_are_limited_per_principal_and_per_tenant(tmp_path: Path) -> None:
    limits = {
        "limit_principal_rps": SLOW,
        "limit_principal_burst": 4,
        "limit_tenant_rps": SLOW,
        "limit_tenant_burst": 6,
    }
    async with served(tmp_path, **limits) as s:
        alice = [await s.api.get(f"{API}/workflows", headers=ALICE) for _ in range(5)]
        erin = [await s.api.get(f"{API}/workflows", headers=ERIN) for _ in range(3)]
        bob = await s.api.get(f"{API}/workflows", headers=BOB)

        assert [r.status_code for r in alice] == [200] * 4 + [429]
        _refused(alice[-1])
        assert [r.status_code for r in erin] == [200, 200, 429]  # the tenant's 6 are spent
        assert bob.status_code == 200


async def test_graphql_requests_are_limited_before_they_run(tmp_path: Path) -> None:
    async with served(tmp_path, limit_principal_rps=SLOW, limit_principal_burst=2) as s:
        query = {"query": "{ workflows { id } }"}
        answers = [await s.api.post("/graphql", json=query, headers=ALICE) for _ in range(3)]

        assert [a.status_code for a in answers] == [200, 200, 429]
        _refused(answers[2])


def test_the_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    limit = RateLimit(rate=2.0, burst=3)
    tokens, first = take(limit, None, 0.0)
    assert (tokens, first.allowed) == (2.0, True)
    tokens, _ = take(limit, tokens, 0.0, cost=2.0)
    tokens, refused = take(limit, tokens, 0.0)
    assert (refused.allowed, refused.retry_after) == (False, 0.5)
    tokens, later = take(limit, tokens, 0.5)
    assert later.allowed
    assert take(limit, 0.0, 100.0)[0] == 2.0  # refilled to the burst, minus this one


async def test_a_refused_caller_is_told_when_to_come_back() -> None:
    now = [1000.0]
    settings = LimitSettings(limit_start_rps=0.5, limit_start_burst=1)
    quotas = Quotas(MemoryRateLimiter(clock=lambda: now[0]), settings)
    await quotas.admit_start("t")
    with pytest.raises(RateLimited) as refused:
        await quotas.admit_start("t")
    assert refused.value.retry_after == 2
    now[0] += 2.0
    await quotas.admit_start("t")


async def test_sqlite_buckets_are_shared_by_every_limiter_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    one, two = SqliteRateLimiter(path), SqliteRateLimiter(path)
    limit = RateLimit(rate=SLOW, burst=10)
    try:
        decisions = await asyncio.gather(
            *(limiter.acquire("k", limit) for limiter in (one, two) for _ in range(15))
        )
        other = await one.acquire("another key", limit)
    finally:
        await one.close()
        await two.close()
    assert sum(d.allowed for d in decisions) == 10
    assert other.allowed
