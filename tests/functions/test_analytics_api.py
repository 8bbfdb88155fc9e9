"""``GET /api/v1/analytics`` and the GraphQL ``analytics`` query: shape, figures of
real runs, window validation with codes and JSON pointers, roles."""

from __future__ import annotations

from typing import Any

import httpx
from _create_api import API, create, doubler, error_of, execute, wait_for


def failing() -> dict[str, Any]:
    return {
        "name": "failing",
        "steps": [{"id": "explode", "type": "transform", "config": {"set": {"x": "${1 / 0}"}}}],
    }


async def run_some(api: httpx.AsyncClient) -> tuple[str, str]:
    good, bad = await create(api, doubler()), await create(api, failing())
    ids = [(await execute(api, good, input={"n": n}))["id"] for n in range(3)]
    ids.append((await execute(api, bad))["id"])
    for execution_id in ids:
        await wait_for(api, execution_id, {"succeeded", "failed"})
    return good, bad


async def test_the_tenant_and_a_workflow_reflect_what_ran(api: httpx.AsyncClient) -> None:
    good, bad = await run_some(api)
    response = await api.get(f"{API}/analytics")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totals"]["started"] == 4
    assert (body["totals"]["succeeded"], body["totals"]["failed"]) == (3, 1)
    assert body["window"]["bucket"] == "day" and set(body["window"]) == {"from", "to", "bucket"}
    assert sum(point["started"] for point in body["series"]) == 4
    by_workflow = {w["workflowId"]: w for w in body["workflows"]}
    assert (by_workflow[good]["succeeded"], by_workflow[bad]["failed"]) == (3, 1)
    steps = {(s["workflowId"], s["stepId"]): s for s in body["steps"]}
    assert steps[(good, "double")]["runs"] == 3
    assert steps[(bad, "explode")]["failed"] == 1
    assert body["triggers"] == [{"type": "manual", "count": 4}]  # API starts record manual
    assert len(body["errors"]) == 1 and body["errors"][0]["failures"] == 1
    assert set(body) >= {"duration", "slowestSteps", "executionErrors", "routes", "llm"}

    one = (await api.get(f"{API}/analytics", params={"workflowId": good, "bucket": "hour"})).json()
    assert (one["workflowId"], one["totals"]["started"], one["window"]["bucket"]) == (
        good,
        3,
        "hour",
    )
    assert [w["workflowId"] for w in one["workflows"]] == [good]
    assert one["duration"]["count"] == 3 and one["duration"]["p95Ms"] is not None


async def test_window_errors_have_codes_and_pointers(api: httpx.AsyncClient) -> None:
    cases = [
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "INVALID_WINDOW"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "WINDOW_TOO_LARGE"),
        (
            {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "hour"},
            "WINDOW_TOO_LARGE",
        ),
    ]
    for params, code in cases:
        response = await api.get(f"{API}/analytics", params=params)
        assert response.status_code == 400, response.text
        assert (error_of(response)["code"], error_of(response)["path"]) == (code, "/from")
    for params in ({"bucket": "week"}, {"from": "yesterday"}, {"to": "0.5"}):
        response = await api.get(f"{API}/analytics", params=params)
        assert response.status_code == 400, (params, response.text)
        assert error_of(response)["path"].startswith("/")


async def test_graphql_answers_the_same_figures(api: httpx.AsyncClient) -> None:
    good, _ = await run_some(api)
    query = """query($wf: String, $from: DateTime) {
      analytics(workflowId: $wf, from: $from, bucket: DAY) {
        workflowId window { from to bucket }
        totals { started succeeded failed running successRate }
        steps { stepId runs duration { p50Ms p95Ms p99Ms } }
        series { bucket started }
        triggers { type count }
        llm { totalTokens costUsd }
      }
    }"""
    response = await api.post(
        "/graphql", json={"query": query, "variables": {"wf": good, "from": None}}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]["analytics"]
    assert data["workflowId"] == good and data["window"]["bucket"] == "DAY"
    assert (data["totals"]["started"], data["totals"]["succeeded"]) == (3, 3)
    assert data["totals"]["successRate"] == 1.0
    assert [s["stepId"] for s in data["steps"]] == ["double"]
    rest = (await api.get(f"{API}/analytics", params={"workflowId": good})).json()
    assert rest["steps"][0]["duration"]["p95Ms"] == data["steps"][0]["duration"]["p95Ms"]

    bad = await api.post(
        "/graphql",
        json={
            "query": '{ analytics(from: "2026-12-02T00:00:00Z", to: "2026-12-01T00:00:00Z") '
            "{ totals { started } } }"
        },
    )
    errors = bad.json()["errors"]
    assert errors[0]["extensions"]["code"] == "INVALID_WINDOW"
