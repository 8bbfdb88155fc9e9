"""GraphQL ``createWorkflow``: a taken name is WORKFLOW_NAME_TAKEN (as in REST), unless
``newVersionOnConflict`` asks for a new version of that workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from _graphql import create, data, doubler, post, settle

from shared.composition import LocalRuntime

CREATE = (
    "mutation($w: WorkflowInput!, $n: Boolean!) "
    "{{ {field}(input: $w, newVersionOnConflict: $n) {body} }}"
)


@pytest.fixture(autouse=True)
async def quiet_runtime(runtime: LocalRuntime) -> AsyncIterator[None]:
    """Let in-flight deliveries finish before the runtime stops."""
    yield
    await settle(runtime)


async def test_a_taken_name_is_refused_unless_a_new_version_is_asked_for(
    api: httpx.AsyncClient,
) -> None:
    first = await create(api, doubler("named"))
    refused = await post(
        api,
        CREATE.format(field="createWorkflow", body="{ id }"),
        {"w": doubler("named"), "n": False},
    )
    assert refused["errors"][0]["extensions"]["code"] == "WORKFLOW_NAME_TAKEN"
    payload = await data(
        api,
        CREATE.format(
            field="createWorkflowResult",
            body="{ __typename ... on ConflictError { code } }",
        ),
        {"w": doubler("named"), "n": False},
    )
    assert payload["createWorkflowResult"] == {
        "__typename": "ConflictError",
        "code": "WORKFLOW_NAME_TAKEN",
    }
    versioned = await data(
        api,
        CREATE.format(field="createWorkflow", body="{ id version }"),
        {"w": doubler("named"), "n": True},
    )
    assert versioned["createWorkflow"] == {"id": first, "version": 2}
    other_tenant = await create(api, doubler("named"), tenant="acme")
    assert other_tenant != first
