"""GraphQL transport, limits and error masking; the status derivation and its helpers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _graphql import codes, create, data, doubler, post, settle
from graphql import get_introspection_query

from shared import models
from shared.api.auth import Principal, Role
from shared.api.edge import Edge
from shared.api.graphql.context import build_context
from shared.api.graphql.schema import schema
from shared.api.graphql.subscriptions import status_after
from shared.app import WorkflowApp
from shared.composition import LocalRuntime
from shared.errors import NotFound

Status = models.ExecutionStatus


async def test_get_runs_queries_only(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    query = await api.get(
        "/graphql",
        params={
            "query": "query($id: ID!) { workflow(id: $id) { name } }",
            "variables": f'{{"id": "{workflow_id}"}}',
        },
    )
    assert query.json() == {"data": {"workflow": {"name": "doubler"}}}
    mutation = await api.get(
        "/graphql", params={"query": 'mutation { deleteWorkflow(id: "x") { __typename } }'}
    )
    assert mutation.status_code == 405
    assert codes(mutation.json()) == ["METHOD_NOT_ALLOWED"]
    ide = await api.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200
    assert "graphiql" in ide.text.lower()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "INVALID_FORMAT"),
        (b'{"query": 3}', "application/json", 400, "INVALID_INPUT"),
        (
            b'{"query": "{ workflows { id } }", "variables": [1]}',
            "application/json",
            400,
            "INVALID_INPUT",
        ),
        (b"query=1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            b'{"query": "subscription { workflowStatus(executionId: \\"x\\") }"}',
            "application/json",
            400,
            "INVALID_INPUT",
        ),
    ],
)
async def test_malformed_requests(
    api: httpx.AsyncClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await api.post("/graphql", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert codes(response.json()) == [code]


def _nested(fields: int) -> str:
    """A query ``fields`` fields deep: workflows { executions { workflow { ... { id } } } }."""
    names = ["workflows"]
    names += ["executions" if i % 2 == 0 else "workflow" for i in range(fields - 2)]
    names += ["id"]
    return "{ " + " { ".join(names) + " }" * (len(names) - 1) + " }"


async def test_depth_alias_and_token_limits(api: httpx.AsyncClient) -> None:
    deep = _nested(12)  # the root field, then 11 levels: one too many
    refused = await post(api, deep)
    assert refused["data"] is None
    assert codes(refused) == ["QUERY_TOO_DEEP"]

    aliases = " ".join(f"a{i}: workflows {{ id }}" for i in range(31))
    assert codes(await post(api, f"{{ {aliases} }}")) == ["TOO_MANY_ALIASES"]
    huge = "{ workflows { " + "id " * 2100 + "} }"
    assert codes(await post(api, huge)) == ["QUERY_TOO_LARGE"]
    assert (await data(api, _nested(11))) == {"workflows": []}


async def test_introspection_is_switchable(api: httpx.AsyncClient, edge: Edge) -> None:
    allowed = await data(api, get_introspection_query())
    assert allowed["__schema"]["queryType"]["name"] == "Query"

    edge.runtime.settings.graphql_introspection = False
    refused = await post(api, "{ __schema { queryType { name } } }")
    assert set(codes(refused)) == {"INTROSPECTION_DISABLED"}
    assert (await data(api, "{ workflows { id } }")) == {"workflows": []}
    no_ide = await api.get("/graphql", headers={"Accept": "text/html"})
    assert no_ide.status_code == 400


async def test_unexpected_errors_are_masked(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: WorkflowApp, **_: Any) -> None:
        raise RuntimeError("secret connection string")

    monkeypatch.setattr(WorkflowApp, "list_workflows", explode)
    body = await post(api, "{ workflows { id } }")
    assert body["errors"] == [
        {
            "message": "internal error",
            "locations": [{"line": 1, "column": 3}],
            "path": ["workflows"],
            "extensions": {"code": "INTERNAL"},
        }
    ]
    assert "secret" not in str(body)


async def test_schema_execute_with_a_viewer(runtime: LocalRuntime) -> None:
    async def run(role: Role, query: str) -> Any:
        context = build_context(Principal("someone", "t", role), runtime.app)
        return await schema.execute(query, context_value=context)

    mutation = 'mutation { createWorkflowResult(input: {name: "n", steps: [{id: "a",'
    mutation += ' type: "transform"}]}) { __typename ... on UserError { code } } }'
    viewer = await run(Role.VIEWER, mutation)
    assert viewer.data == {
        "createWorkflowResult": {"__typename": "ForbiddenError", "code": "FORBIDDEN"}
    }
    editor = await run(Role.EDITOR, mutation)
    assert editor.data["createWorkflowResult"]["__typename"] == "Workflow"
    seed_shaped = await run(
        Role.VIEWER,
        mutation.replace("createWorkflowResult", "createWorkflow").replace(
            "__typename ... on UserError { code }", "id"
        ),
    )
    assert [e.extensions for e in seed_shaped.errors or []] == [{"code": "FORBIDDEN"}]


async def test_get_step_run(runtime: LocalRuntime) -> None:
    app = runtime.app.for_tenant("t")
    definition = await app.create_workflow(
        {"name": "n", "steps": [{"id": "a", "type": "wait", "config": {"seconds": 60}}]}
    )
    from shared.app.service import StartRequest

    execution = await app.start_execution(StartRequest(definition.id, {}))
    await settle(runtime)
    run = (await app.step_history(execution.id))[0]
    assert (await app.get_step_run(execution.id, run.id)).step_id == "a"
    with pytest.raises(NotFound):
        await app.get_step_run(execution.id, "nope")
    with pytest.raises(NotFound):
        await runtime.app.for_tenant("other").get_step_run(execution.id, run.id)
    assert run.scope == "" and run.status == models.StepRunStatus.WAITING


def _event(kind: str, status: str | None, **data: Any) -> models.ExecutionEvent:
    return models.ExecutionEvent(
        execution_id="e",
        workflow_id="w",
        seq=1,
        type=kind,
        status=status,
        run_id="r" if kind.startswith("step.") else None,
        data=data,
    )


@pytest.mark.parametrize(
    ("current", "event", "scope", "expected"),
    [
        (Status.PENDING, _event("execution.started", "running"), "", Status.RUNNING),
        (Status.PENDING, _event("step.started", "running"), "", Status.RUNNING),
        (Status.RUNNING, _event("step.waiting", "waiting", until="t"), "", Status.WAITING),
        (Status.RUNNING, _event("step.waiting", "waiting", until="t"), "r/0", Status.RUNNING),
        (Status.RUNNING, _event("step.waiting", "waiting", bodies=3), "", Status.RUNNING),
        (Status.WAITING, _event("step.started", "running"), "", Status.RUNNING),
        (Status.PAUSED, _event("step.started", "running"), "", Status.PAUSED),
        (Status.RUNNING, _event("execution.paused", "paused"), "", Status.PAUSED),
        (Status.RUNNING, _event("step.succeeded", "succeeded"), "", Status.RUNNING),
        (Status.RUNNING, _event("execution.succeeded", "succeeded"), "", Status.SUCCEEDED),
        (Status.SUCCEEDED, _event("step.started", "running"), "", Status.SUCCEEDED),
    ],
)
async def test_status_after(
    current: Status, event: models.ExecutionEvent, scope: str, expected: Status
) -> None:
    async def scope_of(run_id: str) -> str:
        return scope

    assert await status_after(current, event, scope_of) == expected
