"""``GET /api/v1/workflows/{id}/steps/{stepId}/graph``: a decision tree as Mermaid."""

from __future__ import annotations

from typing import Any

import httpx
from _create_api import API, create
from _schema_check import errors


def triage() -> dict[str, Any]:
    return {
        "name": "triage",
        "steps": [
            {
                "id": "route",
                "type": "decision",
                "config": {
                    "nodes": [
                        {
                            "id": "big",
                            "type": "condition",
                            "when": "input.amount > 100",
                            "then": "review",
                            "else": "ask",
                        },
                        {
                            "id": "ask",
                            "type": "ai",
                            "prompt": "Order ${input.id}",
                            "branches": {"ship": "ship", "review": "review"},
                            "fallback": "history",
                        },
                    ]
                },
                "nextSteps": ["review", "ship"],
            },
            {"id": "review", "type": "transform", "config": {"set": {"r": 1}}},
            {"id": "ship", "type": "transform", "config": {"set": {"s": 1}}},
        ],
    }


async def test_graph_of_a_decision_step(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, triage())
    url = f"{API}/workflows/{workflow_id}/steps/route/graph"
    response = await api.get(url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["workflowId"], body["stepId"], body["format"]) == (workflow_id, "route", "mermaid")
    assert body["graph"].startswith("flowchart TD\n")
    assert "n_big -->|true| s_review" in body["graph"]
    assert "n_ask -.->|fallback| n_ask_h" in body["graph"]
    document = (await api.get(f"{API}/openapi.json")).json()
    operation = document["paths"]["/api/v1/workflows/{workflow_id}/steps/{step_id}/graph"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert errors(body, schema, document) == []
    pinned = await api.get(url, params={"version": 1})
    assert pinned.json()["graph"] == body["graph"] and pinned.json()["version"] == 1


async def test_graph_errors(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, triage())
    base = f"{API}/workflows/{workflow_id}/steps"
    not_decision = await api.get(f"{base}/ship/graph")
    assert not_decision.status_code == 404
    assert not_decision.json()["error"]["code"] == "NOT_FOUND"
    assert (await api.get(f"{base}/nope/graph")).status_code == 404
    assert (await api.get(f"{API}/workflows/missing/steps/route/graph")).status_code == 404
    assert (await api.get(f"{base}/route/graph", params={"version": 7})).status_code == 404
    assert (await api.get(f"{base}/route/graph", params={"version": "x"})).status_code == 400
