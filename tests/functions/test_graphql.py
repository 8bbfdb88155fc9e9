"""GraphQL queries and mutations through the ``create`` function (``POST /graphql``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from _graphql import (
    WORKFLOW_FIELDS,
    approval,
    codes,
    create,
    data,
    doubler,
    execute,
    post,
    settle,
    wait_for_status,
)

from shared.composition import LocalRuntime


@pytest.fixture(autouse=True)
async def quiet_runtime(runtime: LocalRuntime) -> AsyncIterator[None]:
    """Let in-flight deliveries finish before the runtime stops."""
    yield
    await settle(runtime)


async def test_create_update_and_read_versions(api: httpx.AsyncClient) -> None:
    created = await data(
        api,
        f"mutation($w: WorkflowInput!) {{ createWorkflow(input: $w) {{ {WORKFLOW_FIELDS} }} }}",
        {"w": doubler(tags=["billing"])},
    )
    workflow = created["createWorkflow"]
    assert (workflow["version"], workflow["isActive"], workflow["owner"]) == (1, True, "local-dev")
    assert workflow["trigger"] == {"type": "manual", "cron": None}
    assert workflow["steps"][0]["config"] == {"set": {"doubled": "${input.n * 2}"}}
    assert workflow["steps"][0]["onError"] == {"strategy": "RETRY", "retry": {"maxAttempts": 2}}

    update = doubler("doubler-v2") | {
        "description": "second",
        "trigger": {"type": "schedule", "cron": "0 6 * * *"},
    }
    updated = await data(
        api,
        "mutation($id: ID!, $w: WorkflowInput!) {"
        " updateWorkflow(id: $id, input: $w, expectedVersion: 1) {"
        "  id version name trigger { cron } } }",
        {"id": workflow["id"], "w": update},
    )
    assert updated["updateWorkflow"] == {
        "id": workflow["id"],
        "version": 2,
        "name": "doubler-v2",
        "trigger": {"cron": "0 6 * * *"},
    }

    read = await data(
        api,
        "query($id: ID!) { workflow(id: $id) { version description"
        "  versions { version name }  atVersion(version: 1) { name }"
        "  missing: atVersion(version: 9) { name }"
        "  definition } old: workflow(id: $id, version: 1) { version name } }",
        {"id": workflow["id"]},
    )
    head = read["workflow"]
    assert (head["version"], head["description"]) == (2, "second")
    assert head["versions"] == [
        {"version": 1, "name": "doubler"},
        {"version": 2, "name": "doubler-v2"},
    ]
    assert (head["atVersion"], head["missing"]) == ({"name": "doubler"}, None)
    assert head["definition"]["trigger"] == {
        "type": "schedule",
        "cron": "0 6 * * *",
        "timezone": "UTC",
        "input": {},
    }
    assert read["old"] == {"version": 1, "name": "doubler"}

    stale = await post(
        api,
        "mutation($id: ID!, $w: WorkflowInput!) {"
        " updateWorkflowResult(id: $id, input: $w, expectedVersion: 1) {"
        "  __typename ... on UserError { code message } } }",
        {"id": workflow["id"], "w": doubler()},
    )
    assert stale["data"]["updateWorkflowResult"]["__typename"] == "ConflictError"
    assert stale["data"]["updateWorkflowResult"]["code"] == "VERSION_MISMATCH"


async def test_filters_and_pagination(api: httpx.AsyncClient) -> None:
    ids = [
        await create(api, doubler(f"w{i}", tags=["even" if i % 2 == 0 else "odd"]))
        for i in range(5)
    ]
    even = await data(api, '{ workflows(filter: {tags: ["even"]}) { name } }')
    assert sorted(w["name"] for w in even["workflows"]) == ["w0", "w2", "w4"]

    await data(
        api,
        "mutation($id: ID!) { setWorkflowActive(id: $id, active: false) {"
        " ... on Workflow { isActive version } } }",
        {"id": ids[0]},
    )
    active = await data(api, "{ workflows(filter: {activeOnly: true}) { id } }")
    assert sorted(w["id"] for w in active["workflows"]) == sorted(ids[1:])

    seen: list[str] = []
    after = None
    for _ in range(5):
        page = (
            await data(
                api,
                "query($after: String) { workflowsPage(first: 2, after: $after) {"
                " items { id } pageInfo { endCursor hasNextPage } } }",
                {"after": after},
            )
        )["workflowsPage"]
        seen += [w["id"] for w in page["items"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(ids)

    too_big = await post(api, "{ workflows(first: 100000) { id } }")
    assert codes(too_big) == ["INVALID_INPUT"]
    assert too_big["errors"][0]["extensions"]["path"] == "/first"


async def test_execute_poll_steps_events_and_stats(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    execution_id = await execute(api, workflow_id, {"n": 21})
    await wait_for_status(api, execution_id, {"SUCCEEDED"})

    found = await data(
        api,
        "query($id: ID!) { execution(id: $id) {"
        "  status result input workflowVersion duration lastEventSeq workflow { name version }"
        "  steps { stepId status attempt output error { code } }"
        "  events(after: 0) { seq type stepId status data }"
        "  tail: events(after: 2) { seq } } }",
        {"id": execution_id},
    )
    execution = found["execution"]
    assert execution["result"] == {"doubled": 42}
    assert (execution["input"], execution["workflowVersion"]) == ({"n": 21}, 1)
    assert execution["workflow"] == {"name": "doubler", "version": 1}
    assert execution["steps"] == [
        {
            "stepId": "double",
            "status": "SUCCEEDED",
            "attempt": 1,
            "output": {"doubled": 42},
            "error": None,
        }
    ]
    events = execution["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "execution.succeeded"
    assert events[-1]["status"] == "succeeded"
    assert execution["lastEventSeq"] == len(events)
    assert [e["seq"] for e in execution["tail"]] == list(range(3, len(events) + 1))

    listed = await data(
        api,
        "query($wf: ID!) { executions(filter: {workflowId: $wf, status: SUCCEEDED}) { id }"
        " none: executions(filter: {workflowId: $wf, status: FAILED}) { id }"
        " executionStats(workflowId: $wf) { total byStatus durationP50Ms }"
        " workflow(id: $wf) { lastExecuted executions { id } executionStats { total } } }",
        {"wf": workflow_id},
    )
    assert listed["executions"] == [{"id": execution_id}]
    assert listed["none"] == []
    stats = listed["executionStats"]
    assert (stats["total"], stats["byStatus"]) == (1, {"succeeded": 1})
    assert stats["durationP50Ms"] is not None
    assert listed["workflow"]["executions"] == [{"id": execution_id}]
    assert listed["workflow"]["lastExecuted"] is not None


async def test_batches_report_each_item(api: httpx.AsyncClient) -> None:
    broken = doubler("broken") | {"steps": [{"id": "x", "type": "nope"}]}
    created = await data(
        api,
        "mutation($ws: [WorkflowInput!]!) { createWorkflows(inputs: $ws) {"
        " __typename ... on Workflow { id name }"
        " ... on ValidationErrors { code issues { code path } } } }",
        {"ws": [doubler("one"), broken, doubler("three")]},
    )
    results = created["createWorkflows"]
    assert [r["__typename"] for r in results] == ["Workflow", "ValidationErrors", "Workflow"]
    assert results[1]["code"] == "VALIDATION_FAILED"
    assert results[1]["issues"][0]["path"] == "/steps/0/type"

    requests = [
        {"workflowId": results[0]["id"], "input": {"n": 1}},
        {"workflowId": "no-such-workflow"},
        {"workflowId": results[2]["id"], "input": [1]},
    ]
    started = await data(
        api,
        "mutation($rs: [ExecuteWorkflowRequest!]!) { executeWorkflows(requests: $rs) {"
        " __typename ... on WorkflowExecution { id } ... on UserError { code path } } }",
        {"rs": requests},
    )
    outcomes = started["executeWorkflows"]
    assert [o["__typename"] for o in outcomes] == [
        "WorkflowExecution",
        "NotFoundError",
        "ValidationErrors",
    ]
    assert (outcomes[2]["code"], outcomes[2]["path"]) == ("INVALID_INPUT", "/input")

    await wait_for_status(api, outcomes[0]["id"], {"SUCCEEDED"})
    cancelled = await data(
        api,
        'mutation($ids: [ID!]!) { cancelExecutions(ids: $ids, reason: "tidy") {'
        " __typename ... on UserError { code } } }",
        {"ids": [outcomes[0]["id"], "missing"]},
    )
    assert cancelled["cancelExecutions"] == [
        {"__typename": "InvalidStateError", "code": "INVALID_STATE"},
        {"__typename": "NotFoundError", "code": "NOT_FOUND"},
    ]
    too_many = await post(
        api,
        "mutation($ids: [ID!]!) { cancelExecutions(ids: $ids) { __typename } }",
        {"ids": ["x"] * 101},
    )
    assert codes(too_many) == ["INVALID_INPUT"]


async def test_validation_errors_carry_code_and_path(api: httpx.AsyncClient) -> None:
    bad = doubler() | {
        "steps": [{"id": "nap", "type": "wait", "config": {"seconds": 1, "until": "x"}}]
    }
    body = await post(
        api, "mutation($w: WorkflowInput!) { createWorkflow(input: $w) { id } }", {"w": bad}
    )
    assert body["data"] is None
    error = body["errors"][0]
    assert error["path"] == ["createWorkflow"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED"
    assert error["extensions"]["path"] == "/steps/0/config"
    assert error["extensions"]["errors"][0]["path"] == "/steps/0/config"

    as_union = await data(
        api,
        "mutation($w: WorkflowInput!) { createWorkflowResult(input: $w) {"
        " ... on ValidationErrors { code path issues { code path message } } } }",
        {"w": bad},
    )
    assert as_union["createWorkflowResult"]["path"] == "/steps/0/config"
    not_graphql = await post(api, "mutation { createWorkflow(input: {steps: []}) { id } }")
    assert codes(not_graphql) == ["GRAPHQL_VALIDATION_FAILED"]
    missing = await post(api, 'mutation { executeWorkflow(id: "nope", input: {}) { id } }')
    assert codes(missing) == ["NOT_FOUND"]


async def test_execution_control(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, approval())
    execution_id = await execute(api, workflow_id)
    await wait_for_status(api, execution_id, {"WAITING"})
    control = "mutation($id: ID!) {{ {op}(id: $id) {{ __typename"
    control += " ... on WorkflowExecution {{ status }} ... on UserError {{ code }} }} }}"

    paused = await data(api, control.format(op="pauseExecution"), {"id": execution_id})
    assert paused["pauseExecution"] == {"__typename": "WorkflowExecution", "status": "PAUSED"}
    again = await data(api, control.format(op="pauseExecution"), {"id": execution_id})
    assert again["pauseExecution"] == {"__typename": "InvalidStateError", "code": "INVALID_STATE"}
    resumed = await data(api, control.format(op="resumeExecution"), {"id": execution_id})
    assert resumed["resumeExecution"]["status"] == "WAITING", "still waiting for its event"

    sent = await data(
        api,
        'mutation($id: ID!) { sendEvent(executionId: $id, name: "approval", payload: {by: "ana"})'
        " { ... on EventDelivery { delivered signalId } } }",
        {"id": execution_id},
    )
    assert sent["sendEvent"]["delivered"] is True
    await wait_for_status(api, execution_id, {"SUCCEEDED"})
    redrive = await data(api, control.format(op="redriveExecution"), {"id": execution_id})
    assert redrive["redriveExecution"]["code"] == "INVALID_STATE"

    other = await execute(api, workflow_id)
    cancel = await data(api, control.format(op="cancelExecution"), {"id": other})
    assert cancel["cancelExecution"] == {"__typename": "WorkflowExecution", "status": "CANCELLED"}


async def test_tenants_are_isolated(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler(), tenant="acme")
    execution_id = (
        await data(
            api,
            "mutation($id: ID!) { executeWorkflow(id: $id, input: {input: {n: 1}}) { id } }",
            {"id": workflow_id},
            tenant="acme",
        )
    )["executeWorkflow"]["id"]

    seen = await data(
        api,
        "query($w: ID!, $e: ID!) { workflow(id: $w) { id } execution(id: $e) { id }"
        " workflows { id } executions { id } }",
        {"w": workflow_id, "e": execution_id},
        tenant="globex",
    )
    assert seen == {"workflow": None, "execution": None, "workflows": [], "executions": []}
    update = await post(
        api,
        "mutation($id: ID!, $w: WorkflowInput!) { updateWorkflow(id: $id, input: $w) { id } }",
        {"id": workflow_id, "w": doubler()},
        tenant="globex",
    )
    assert codes(update) == ["NOT_FOUND"]
    cancel = await data(
        api,
        "mutation($id: ID!) { cancelExecution(id: $id) { __typename } }",
        {"id": execution_id},
        tenant="globex",
    )
    assert cancel["cancelExecution"]["__typename"] == "NotFoundError"
    mine = await data(api, "{ workflows { id } }", tenant="acme")
    assert mine["workflows"] == [{"id": workflow_id}]


async def test_executions_filtered_by_when_they_started(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    ids = [await execute(api, workflow_id, {"n": n}) for n in range(3)]
    listed = await data(
        api,
        "query($wf: ID!) { executions(filter: {workflowId: $wf}) { id startedAt } }",
        {"wf": workflow_id},
    )
    moments = {e["id"]: e["startedAt"] for e in listed["executions"]}
    middle = sorted(moments.values())[1]
    later = await data(
        api,
        "query($wf: ID!, $t: DateTime!) {"
        " from: executions(filter: {workflowId: $wf, startedFrom: $t}) { id }"
        " before: executions(filter: {workflowId: $wf, startedBefore: $t}) { id } }",
        {"wf": workflow_id, "t": middle},
    )
    assert {e["id"] for e in later["from"]} == {i for i in ids if moments[i] >= middle}
    assert {e["id"] for e in later["before"]} == {i for i in ids if moments[i] < middle}
    assert len(later["from"]) == 2 and len(later["before"]) == 1
    zoneless = await post(
        api,
        "query($t: DateTime!) { executions(filter: {startedFrom: $t}) { id } }",
        {"t": middle.replace("Z", "").split("+")[0]},
    )
    assert codes(zoneless) == ["INVALID_INPUT"], zoneless
