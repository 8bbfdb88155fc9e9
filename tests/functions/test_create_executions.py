"""The ``create`` function's execution endpoints: start, query, history, events, control."""

from __future__ import annotations

import httpx
from _create_api import API, approval, create, doubler, error_of, execute, wait_for


async def test_execute_runs_to_success(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    response = await api.post(f"{API}/workflows/{workflow_id}/execute", json={"input": {"n": 21}})
    assert response.status_code == 202
    started = response.json()
    assert response.headers["location"] == f"{API}/executions/{started['id']}"
    assert (started["workflowId"], started["workflowVersion"]) == (workflow_id, 1)
    assert started["input"] == {"n": 21}

    done = await wait_for(api, started["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded"
    assert done["result"] == {"doubled": 42}
    assert [(s["stepId"], s["status"], s["attempt"]) for s in done["steps"]] == [
        ("double", "succeeded", 1)
    ]
    assert "leaseOwner" not in done["steps"][0]

    steps = await api.get(f"{API}/executions/{started['id']}/steps")
    assert steps.json() == {"items": done["steps"]}
    one = (await api.get(f"{API}/workflows/{workflow_id}")).json()
    stats = one["executionStats"]
    assert (stats["total"], stats["byStatus"], stats["window"]) == (1, {"succeeded": 1}, 1000)
    # the listing carries them too (issue 11 item 7: total 0 and no lastExecuted there)
    [listed] = (await api.get(f"{API}/workflows")).json()["items"]
    assert listed["lastExecuted"] == one["lastExecuted"] == started["startedAt"]
    assert listed["executionStats"] == {**stats, "window": 100}


async def test_execute_a_pinned_version_idempotently(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler("v1"))
    await api.put(f"{API}/workflows/{workflow_id}", json=doubler("v2"))
    first = await execute(api, workflow_id, input={"n": 1}, version=1, executionId="order-17")
    second = await execute(api, workflow_id, input={"n": 1}, executionId="order-17")  # a retry
    assert first["id"] == second["id"] == "order-17"
    assert (second["workflowVersion"], second["input"]) == (1, {"n": 1})
    listing = await api.get(f"{API}/executions", params={"workflow_id": workflow_id})
    assert [e["id"] for e in listing.json()["items"]] == ["order-17"]


async def test_an_execution_id_reused_for_another_start_is_409(api: httpx.AsyncClient) -> None:
    """Issue 11, item 7: a different input under a used id once answered 202 with the
    first execution, silently; and another tenant got that tenant's execution back."""
    workflow_id = await create(api, doubler())
    other_workflow = await create(api, doubler("other"))
    await execute(api, workflow_id, input={"n": 1}, executionId="order-18")
    url = f"{API}/workflows/{{}}/execute"
    attempts = [
        (workflow_id, {"input": {"n": 2}}, {}),
        (other_workflow, {"input": {"n": 1}}, {}),
    ]
    foreign = await api.post(f"{API}/workflows", json=doubler("acme"), headers={"X-Tenant": "acme"})
    attempts.append((foreign.json()["id"], {"input": {"n": 1}}, {"X-Tenant": "acme"}))
    for target, body, headers in attempts:
        response = await api.post(
            url.format(target), json={**body, "executionId": "order-18"}, headers=headers
        )
        assert (response.status_code, error_of(response)["code"]) == (409, "EXECUTION_ID_REUSED")
        assert '"n"' not in response.text and workflow_id not in response.text
    listing = await api.get(f"{API}/executions", params={"workflow_id": workflow_id})
    assert [(e["id"], e["input"]) for e in listing.json()["items"]] == [("order-18", {"n": 1})]


async def test_execute_errors(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    url = f"{API}/workflows/{workflow_id}/execute"
    wrong_type = await api.post(url, json={"input": [1, 2]})
    assert wrong_type.status_code == 422
    assert [(e["code"], e["path"]) for e in error_of(wrong_type)["errors"]] == [
        ("FIELD_TYPE", "/input")
    ]
    unknown = await api.post(url, json={"inputs": {}})
    assert [(e["code"], e["path"]) for e in error_of(unknown)["errors"]] == [
        ("UNKNOWN_FIELD", "/inputs")
    ]
    no_version = await api.post(url, json={"version": 5})
    assert (no_version.status_code, error_of(no_version)["code"]) == (404, "NOT_FOUND")
    not_json = await api.post(url, content=b"n=1")
    assert (not_json.status_code, error_of(not_json)["code"]) == (400, "INVALID_INPUT")
    empty = await api.post(url)
    assert (empty.status_code, empty.json()["input"]) == (202, {})


async def test_execution_filters_and_pagination(api: httpx.AsyncClient) -> None:
    doubles = await create(api, doubler())
    waits = await create(api, approval())
    for n in range(3):
        await wait_for(api, (await execute(api, doubles, input={"n": n}))["id"], {"succeeded"})
    waiting = await execute(api, waits)
    await wait_for(api, waiting["id"], {"waiting"})

    async def ids(**params: str) -> list[str]:
        response = await api.get(f"{API}/executions", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert await ids(status="waiting") == [waiting["id"]]
    assert len(await ids(status="succeeded")) == 3
    assert await ids(workflow_id=waits) == [waiting["id"]]
    assert await ids(workflow_id=doubles, status="waiting") == []
    first = (await api.get(f"{API}/executions", params={"limit": "2"})).json()
    rest = (await api.get(f"{API}/executions", params={"cursor": first["nextCursor"]})).json()
    assert rest["nextCursor"] is None
    assert len({e["id"] for e in first["items"] + rest["items"]}) == 4
    bad = await api.get(f"{API}/executions", params={"status": "sleeping"})
    assert (bad.status_code, error_of(bad)["path"]) == (400, "/status")


async def test_executions_listed_by_when_they_started(api: httpx.AsyncClient) -> None:
    doubles = await create(api, doubler())
    started = [await execute(api, doubles, input={"n": n}) for n in range(3)]
    moments = sorted(e["startedAt"] for e in started)

    async def ids(**params: str) -> list[str]:
        response = await api.get(f"{API}/executions", params={"workflow_id": doubles, **params})
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    newest_first = [e["id"] for e in sorted(started, key=lambda e: e["startedAt"], reverse=True)]
    assert await ids(started_from=moments[1]) == newest_first[:2]
    assert await ids(started_before=moments[1]) == newest_first[2:]
    assert await ids(started_from=moments[0], started_before=moments[2]) == newest_first[1:]
    # A moment without a zone, an empty range and garbage are 400 with the parameter's path.
    naive = moments[0].replace("Z", "").split("+")[0]
    for params, path in (
        ({"started_from": naive}, "/started_from"),
        ({"started_from": moments[2], "started_before": moments[0]}, "/started_from"),
        ({"started_before": "yesterday"}, "/started_before"),
        # pydantic reads a number as seconds since the epoch; the schema's date-time does not
        ({"started_before": "0"}, "/started_before"),
        ({"started_from": "1700000000"}, "/started_from"),
    ):
        bad = await api.get(f"{API}/executions", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert error_of(bad)["path"] == path, bad.text


async def test_event_resumes_a_waiting_execution(api: httpx.AsyncClient) -> None:
    execution = await execute(api, await create(api, approval()))
    url = f"{API}/executions/{execution['id']}"
    await wait_for(api, execution["id"], {"waiting"})
    sent = await api.post(f"{url}/events", json={"name": "approval", "payload": {"by": "maria"}})
    assert sent.status_code == 202
    assert sent.json()["delivered"] is True
    assert isinstance(sent.json()["signalId"], str)
    done = await wait_for(api, execution["id"], {"succeeded", "failed"})
    assert (done["status"], done["result"]) == ("succeeded", {"approvedBy": "maria"})
    assert [s["stepId"] for s in done["steps"]] == ["wait_for_approval", "record"]

    events = (await api.get(f"{url}/events")).json()
    seqs = [e["seq"] for e in events["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert events["items"][0]["type"] == "execution.started"
    assert events["items"][-1]["type"] == "execution.succeeded"
    assert events["nextAfter"] is None
    tail = (await api.get(f"{url}/events", params={"after": seqs[-2]})).json()
    assert [e["seq"] for e in tail["items"]] == [seqs[-1]]
    paged = (await api.get(f"{url}/events", params={"limit": "2"})).json()
    assert ([e["seq"] for e in paged["items"]], paged["nextAfter"]) == ([1, 2], 2)
    # Past the 64-bit range a store holds: 400 at the parameter, not a 500 from the store.
    huge = await api.get(f"{url}/events", params={"after": str(2**67)})
    assert (huge.status_code, error_of(huge)["path"]) == (400, "/after"), huge.text
    last = await api.get(f"{url}/events", params={"after": str(2**63 - 1)})
    assert (last.status_code, last.json()["items"]) == (200, [])
    late = await api.post(f"{url}/events", json={"name": "approval"})
    assert (late.status_code, error_of(late)["code"]) == (409, "INVALID_STATE")


async def test_an_event_sent_early_is_kept(api: httpx.AsyncClient) -> None:
    workflow = approval()
    workflow["steps"].insert(0, {"id": "nap", "type": "wait", "config": {"seconds": 0.3}})
    workflow["steps"][0]["nextSteps"] = ["wait_for_approval"]
    execution = await execute(api, await create(api, workflow))
    sent = await api.post(
        f"{API}/executions/{execution['id']}/events",
        json={"name": "approval", "payload": {"by": "li"}},
    )
    assert (sent.status_code, sent.json()["delivered"]) == (202, False)
    done = await wait_for(api, execution["id"], {"succeeded", "failed"})
    assert done["result"] == {"approvedBy": "li"}


async def test_pause_resume_cancel(api: httpx.AsyncClient) -> None:
    execution = await execute(api, await create(api, approval()))
    url = f"{API}/executions/{execution['id']}"
    await wait_for(api, execution["id"], {"waiting"})
    paused = await api.post(f"{url}/pause")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    twice = await api.post(f"{url}/pause")
    assert (twice.status_code, error_of(twice)["code"]) == (409, "INVALID_STATE")
    resumed = await api.post(f"{url}/resume")
    # the step still waits for its event: resume restores "waiting" (issue 11, item 2)
    assert (resumed.status_code, resumed.json()["status"]) == (200, "waiting")
    cancelled = await api.post(f"{url}/cancel", json={"reason": "changed my mind"})
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert cancelled.json()["errorInfo"]["message"] == "changed my mind"
    final = await wait_for(api, execution["id"], {"cancelled"})
    assert final["completedAt"] is not None
    again = await api.post(f"{url}/cancel")
    assert (again.status_code, error_of(again)["code"]) == (409, "INVALID_STATE")
    resume_done = await api.post(f"{url}/resume")
    assert resume_done.status_code == 409


async def test_redrive_a_failed_execution(api: httpx.AsyncClient) -> None:
    execution = await execute(api, await create(api, approval(timeout_seconds=0.5)))
    url = f"{API}/executions/{execution['id']}"
    failed = await wait_for(api, execution["id"], {"failed", "succeeded"})
    assert failed["status"] == "failed"
    assert failed["errorInfo"]["code"] == "EVENT_TIMEOUT"
    redriven = await api.post(f"{url}/redrive")
    assert redriven.status_code == 200
    assert (redriven.json()["status"], redriven.json()["redriveCount"]) == ("running", 1)
    await wait_for(api, execution["id"], {"waiting"})
    await api.post(f"{url}/events", json={"name": "approval", "payload": {"by": "ops"}})
    # the redriven step has a fresh 0.5 s timeout: the event must win it, or the run fails
    done = await wait_for(api, execution["id"], {"succeeded", "failed"})
    assert (done["status"], done["result"]) == ("succeeded", {"approvedBy": "ops"})
    generations = [(s["stepId"], s["generation"], s["status"]) for s in done["steps"]]
    assert generations == [
        ("wait_for_approval", 0, "failed"),
        ("wait_for_approval", 1, "succeeded"),
        ("record", 1, "succeeded"),
    ]
    not_failed = await api.post(f"{url}/redrive")
    assert (not_failed.status_code, error_of(not_failed)["code"]) == (409, "INVALID_STATE")


async def test_control_of_unknown_or_foreign_executions(api: httpx.AsyncClient) -> None:
    execution = await execute(api, await create(api, approval()))
    await wait_for(api, execution["id"], {"waiting"})
    other = {"X-Tenant": "other"}
    for action in ("cancel", "pause", "resume", "redrive"):
        missing = await api.post(f"{API}/executions/nope/{action}")
        assert (missing.status_code, error_of(missing)["code"]) == (404, "NOT_FOUND")
        foreign = await api.post(f"{API}/executions/{execution['id']}/{action}", headers=other)
        assert foreign.status_code == 404, action
    for path in ("", "/steps", "/events"):
        foreign = await api.get(f"{API}/executions/{execution['id']}{path}", headers=other)
        assert foreign.status_code == 404, path
    event = await api.post(
        f"{API}/executions/{execution['id']}/events", json={"name": "approval"}, headers=other
    )
    assert event.status_code == 404
    assert (await api.get(f"{API}/executions", headers=other)).json()["items"] == []
    bad_event = await api.post(f"{API}/executions/{execution['id']}/events", json={"name": ""})
    assert [e["path"] for e in error_of(bad_event)["errors"]] == ["/name"]
