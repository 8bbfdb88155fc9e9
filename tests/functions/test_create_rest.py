"""The ``create`` function's workflow endpoints, driven through the functions framework."""

from __future__ import annotations

import json

import httpx
import yaml
from _create_api import API, APPROVAL_YAML, approval, create, doubler, error_of

from shared.api.middleware import MAX_BODY_BYTES
from shared.composition import LocalRuntime


async def test_create_get_update_delete(api: httpx.AsyncClient) -> None:
    created = await api.post(f"{API}/workflows", json=doubler(tags=["billing"]))
    assert created.status_code == 201
    body = created.json()
    assert created.headers["location"] == f"{API}/workflows/{body['id']}"
    assert created.headers["etag"] == '"1"'
    assert (body["name"], body["version"], body["isActive"], body["owner"]) == (
        "doubler",
        1,
        True,
        "local-dev",
    )

    got = await api.get(f"{API}/workflows/{body['id']}")
    assert got.status_code == 200
    assert got.json()["executionStats"] == {"total": 0, "window": 1000, "byStatus": {}}
    assert got.json()["steps"] == body["steps"]

    changed = doubler(name="doubler-v2", tags=["billing"])
    updated = await api.put(f"{API}/workflows/{body['id']}", json=changed)
    assert updated.status_code == 200
    assert (updated.json()["version"], updated.json()["name"]) == (2, "doubler-v2")
    assert updated.headers["etag"] == '"2"'
    assert updated.json()["createdAt"] == body["createdAt"]

    deleted = await api.delete(f"{API}/workflows/{body['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = await api.get(f"{API}/workflows/{body['id']}")
    assert gone.status_code == 404
    assert error_of(gone)["code"] == "NOT_FOUND"
    again = await api.delete(f"{API}/workflows/{body['id']}")
    assert again.status_code == 404


async def test_if_match_guards_updates(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    url = f"{API}/workflows/{workflow_id}"
    stale = await api.put(url, json=doubler("x"), headers={"If-Match": '"7"'})
    assert stale.status_code == 409
    assert error_of(stale)["code"] == "VERSION_MISMATCH"
    assert (await api.get(url)).json()["version"] == 1
    fresh = await api.put(url, json=doubler("x"), headers={"If-Match": '"1"'})
    assert (fresh.status_code, fresh.json()["version"]) == (200, 2)
    bad = await api.put(url, json=doubler("x"), headers={"If-Match": "latest"})
    assert (bad.status_code, error_of(bad)["code"]) == (400, "INVALID_INPUT")


async def test_versions_are_immutable(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler("one"))
    await api.put(f"{API}/workflows/{workflow_id}", json=doubler("two"))
    versions = await api.get(f"{API}/workflows/{workflow_id}/versions")
    assert versions.status_code == 200
    assert [(v["version"], v["name"]) for v in versions.json()["items"]] == [
        (1, "one"),
        (2, "two"),
    ]
    first = await api.get(f"{API}/workflows/{workflow_id}/versions/1")
    assert (first.status_code, first.json()["name"]) == (200, "one")
    missing = await api.get(f"{API}/workflows/{workflow_id}/versions/9")
    assert (missing.status_code, error_of(missing)["code"]) == (404, "NOT_FOUND")
    not_a_number = await api.get(f"{API}/workflows/{workflow_id}/versions/first")
    assert not_a_number.status_code == 404


async def test_activate_deactivate_and_filters(api: httpx.AsyncClient) -> None:
    a = await create(api, doubler("a", tags=["x", "y"]))
    b = await create(api, doubler("b", tags=["x"]))
    off = await api.post(f"{API}/workflows/{b}/deactivate")
    assert (off.status_code, off.json()["isActive"], off.json()["version"]) == (200, False, 2)

    async def names(query: str) -> list[str]:
        response = await api.get(f"{API}/workflows{query}")
        assert response.status_code == 200, response.text
        return sorted(w["name"] for w in response.json()["items"])

    assert await names("") == ["a", "b"]
    assert await names("?active_only=true") == ["a"]
    assert await names("?tags=x,y") == ["a"]
    assert await names("?tags=x&tags=y") == ["a"]
    assert await names("?tags=x") == ["a", "b"]
    assert await names("?tags=z") == []
    on = await api.post(f"{API}/workflows/{b}/activate")
    assert (on.json()["isActive"], on.json()["version"]) == (True, 3)
    assert await names("?active_only=true") == ["a", "b"]
    assert a != b


async def test_pagination_walks_every_workflow_once(api: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(api, doubler(f"w{index}"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await api.get(f"{API}/workflows", params=params)
        assert response.status_code == 200
        page = response.json()
        assert set(page) == {"items", "nextCursor"}
        assert len(page["items"]) <= 2
        seen += [w["name"] for w in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert (pages, sorted(seen)) == (3, ["w0", "w1", "w2", "w3", "w4"])


async def test_bad_query_parameters(api: httpx.AsyncClient) -> None:
    for query, path in (
        ("limit=0", "/limit"),
        ("limit=201", "/limit"),
        ("limit=ten", "/limit"),
        ("active_only=maybe", "/active_only"),
        ("cursor=garbage", "/cursor"),
    ):
        response = await api.get(f"{API}/workflows?{query}")
        assert response.status_code == 400, query
        assert (error_of(response)["code"], error_of(response)["path"]) == ("INVALID_INPUT", path)


async def test_validation_errors_are_422_with_pointers_and_store_nothing(
    api: httpx.AsyncClient,
) -> None:
    invalid = doubler()
    invalid["steps"][0]["nextSteps"] = ["nowhere"]
    invalid["steps"].append({"id": "double", "type": "teleport"})
    response = await api.post(f"{API}/workflows", json=invalid)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "VALIDATION_FAILED"
    found = {(e["code"], e["path"]) for e in error["errors"]}
    assert ("UNKNOWN_NEXT_STEP", "/steps/0/nextSteps/0") in found
    assert ("DUPLICATE_STEP_ID", "/steps/1/id") in found
    assert error["path"] == error["errors"][0]["path"]
    missing = await api.post(f"{API}/workflows", json={"name": "no steps"})
    assert error_of(missing)["errors"] == [
        {"code": "FIELD_REQUIRED", "message": "Field required", "path": "/steps"}
    ]
    listing = await api.get(f"{API}/workflows")
    assert listing.json() == {"items": [], "nextCursor": None}


async def test_dry_run_validation(api: httpx.AsyncClient) -> None:
    ok = await api.post(f"{API}/workflows/validate", json=doubler())
    assert (ok.status_code, ok.json()) == (200, {"valid": True})
    bad = await api.post(f"{API}/workflows/validate", json={"name": "", "steps": []})
    assert bad.status_code == 422
    assert {e["path"] for e in error_of(bad)["errors"]} == {"/name", "/steps"}
    as_yaml = await api.post(
        f"{API}/workflows/validate",
        content=APPROVAL_YAML,
        headers={"Content-Type": "application/yaml"},
    )
    assert (as_yaml.status_code, as_yaml.json()) == (200, {"valid": True})
    assert (await api.get(f"{API}/workflows")).json()["items"] == []


async def test_body_errors(api: httpx.AsyncClient) -> None:
    not_json = await api.post(
        f"{API}/workflows", content=b"{name: oops", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status_code, error_of(not_json)["code"]) == (400, "INVALID_INPUT")
    a_list = await api.post(f"{API}/workflows", json=[doubler()])
    assert (a_list.status_code, error_of(a_list)["code"]) == (400, "INVALID_INPUT")
    bad_yaml = await api.post(
        f"{API}/workflows", content=b"name: [", headers={"Content-Type": "application/yaml"}
    )
    assert (bad_yaml.status_code, error_of(bad_yaml)["code"]) == (400, "INVALID_INPUT")
    huge = json.dumps({"name": "x" * MAX_BODY_BYTES, "steps": []})
    too_large = await api.post(
        f"{API}/workflows", content=huge, headers={"Content-Type": "application/json"}
    )
    assert (too_large.status_code, error_of(too_large)["code"]) == (413, "PAYLOAD_TOO_LARGE")
    yaml_event = await api.post(
        f"{API}/executions/x/events", content=b"name: a", headers={"Content-Type": "text/yaml"}
    )
    assert (yaml_event.status_code, error_of(yaml_event)["code"]) == (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )


async def test_yaml_body_creates_the_same_workflow(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{API}/workflows",
        content=APPROVAL_YAML,
        headers={"Content-Type": "application/yaml; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    from_json = await api.post(f"{API}/workflows?onConflict=newVersion", json=approval())
    assert (from_json.status_code, from_json.json()["version"]) == (201, 2)
    strip = ("version", "createdAt", "updatedAt", "output")
    assert {k: v for k, v in response.json().items() if k not in strip} == {
        k: v for k, v in from_json.json().items() if k not in strip
    }


async def test_import_export_round_trip(api: httpx.AsyncClient) -> None:
    two = yaml.safe_dump(doubler("first", ["t"])) + "---\n" + APPROVAL_YAML
    imported = await api.post(
        f"{API}/workflows/import", content=two, headers={"Content-Type": "application/yaml"}
    )
    assert imported.status_code == 201, imported.text
    items = imported.json()["items"]
    assert [w["name"] for w in items] == ["first", "approval"]

    exported = await api.get(f"{API}/workflows/{items[0]['id']}/export?format=yaml")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    document = yaml.safe_load(exported.text)
    for server_field in ("id", "version", "owner", "createdAt", "updatedAt", "executionStats"):
        assert server_field not in document
    as_json = await api.get(f"{API}/workflows/{items[0]['id']}/export")
    assert as_json.json() == document

    again = await api.post(
        f"{API}/workflows/import",
        content=exported.text,
        headers={"Content-Type": "application/yaml"},
    )
    assert (again.status_code, error_of(again)["code"]) == (409, "WORKFLOW_NAME_TAKEN")
    again = await api.post(
        f"{API}/workflows/import?onConflict=newVersion",
        content=exported.text,
        headers={"Content-Type": "application/yaml"},
    )
    assert again.status_code == 201, again.text
    clone = again.json()["items"][0]
    assert (clone["id"], clone["version"]) == (items[0]["id"], 2)
    reexported = await api.get(f"{API}/workflows/{clone['id']}/export")
    assert reexported.json() == document
    twice = await api.post(f"{API}/workflows/import", json=[document, document])
    assert (twice.status_code, error_of(twice)["code"]) == (409, "WORKFLOW_NAME_TAKEN")
    by_json = await api.post(
        f"{API}/workflows/import", params={"onConflict": "newVersion"}, json=[document, document]
    )
    assert [w["version"] for w in by_json.json()["items"]] == [3, 4]
    assert len((await api.get(f"{API}/workflows")).json()["items"]) == 2


async def test_import_is_all_or_nothing(api: httpx.AsyncClient) -> None:
    broken = approval()
    broken["steps"][0]["config"] = {"event": "approval"}
    response = await api.post(f"{API}/workflows/import", json=[doubler(), broken])
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "VALIDATION_FAILED"
    assert [(e["code"], e["path"]) for e in error["errors"]] == [
        ("FIELD_REQUIRED", "/1/steps/0/config/timeoutSeconds")
    ]
    assert (await api.get(f"{API}/workflows")).json()["items"] == []


async def test_another_tenant_sees_nothing(api: httpx.AsyncClient) -> None:
    workflow_id = await create(api, doubler())
    other = {"X-Tenant": "other"}
    for method, path in (
        ("GET", f"/workflows/{workflow_id}"),
        ("PUT", f"/workflows/{workflow_id}"),
        ("DELETE", f"/workflows/{workflow_id}"),
        ("GET", f"/workflows/{workflow_id}/versions"),
        ("GET", f"/workflows/{workflow_id}/export"),
        ("POST", f"/workflows/{workflow_id}/execute"),
    ):
        body = doubler() if method == "PUT" else None
        response = await api.request(method, f"{API}{path}", json=body, headers=other)
        assert (response.status_code, error_of(response)["code"]) == (404, "NOT_FOUND"), path
    assert (await api.get(f"{API}/workflows", headers=other)).json()["items"] == []
    own = await create(api, doubler("theirs"), **other)
    assert (await api.get(f"{API}/workflows/{own}")).status_code == 404
    assert (await api.get(f"{API}/workflows/{workflow_id}")).status_code == 200


async def test_unknown_path_and_wrong_method(api: httpx.AsyncClient) -> None:
    unknown = await api.get(f"{API}/nothing/here")
    assert unknown.status_code == 404
    assert error_of(unknown) == {
        "code": "NOT_FOUND",
        "message": "no such endpoint: /api/v1/nothing/here",
    }
    wrong = await api.patch(f"{API}/workflows")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "METHOD_NOT_ALLOWED"
    assert wrong.headers["allow"] == "GET, POST"
    assert (await api.delete(f"{API}/workflows/import")).status_code == 404


async def test_health_on_root_and_under_the_api(
    api: httpx.AsyncClient, runtime: LocalRuntime
) -> None:
    for path in ("/health", f"{API}/health", f"{API}/health/"):
        response = await api.get(path, follow_redirects=True)  # the last is redirected
        assert (response.status_code, response.json()) == (
            200,
            {"status": "ok", "service": "create"},
        )


async def test_graphql_is_served_on_the_root_and_under_the_api(api: httpx.AsyncClient) -> None:
    for path in ("/graphql", f"{API}/graphql"):
        response = await api.post(path, json={"query": "{ __typename }"})
        assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})
    wrong = await api.put("/graphql")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD, POST")
    assert error_of(wrong)["code"] == "METHOD_NOT_ALLOWED"
