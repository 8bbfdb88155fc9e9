"""``POST /api/v1/workflows/import?format=gcw|asl`` and the ``importWorkflow`` mutation:
translations of corpus samples as dry runs, saved, run on the local engine, refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _create_api import API, error_of, wait_for
from _schema_check import errors

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.middleware import MAX_BODY_BYTES

CORPUS = Path(__file__).resolve().parents[1] / "import" / "corpus"
IMPORT = f"{API}/workflows/import"
YAML = {"Content-Type": "application/yaml"}
JSON_BODY = {"Content-Type": "application/json"}
OWNER, VIEWER = {"X-API-Key": "owner-key"}, {"X-API-Key": "viewer-key"}

ITERATE_MAP = (CORPUS / "gcw" / "iterate_map.workflows.yaml").read_text()
"""Sums a map's values: its documented result is 60."""
CHOICE = (CORPUS / "asl" / "path-based-on-data.statemachine.asl.json").read_text()
"""A Choice state over $.type and $.value, then Pass states."""
ACTIVITY = (CORPUS / "asl" / "activity-state-machine.activity_state.asl.json").read_text()
"""Valid once translated, but its activity Resource is unsupported (a placeholder)."""
EITHER_OR = (CORPUS / "asl" / "either-or-parallel-pattern.statemachine.asl.json").read_text()
"""Translates to a definition our validation refuses (unreachable steps)."""


async def _names(api: httpx.AsyncClient, **headers: str) -> list[str]:
    response = await api.get(f"{API}/workflows", headers=headers)
    assert response.status_code == 200, response.text
    return sorted(item["name"] for item in response.json()["items"])


def _import(
    api: httpx.AsyncClient,
    source: str,
    format: str = "gcw",
    headers: dict[str, str] | None = None,
    **params: str,
) -> Awaitable[httpx.Response]:
    media = YAML if format == "gcw" else JSON_BODY
    return api.post(
        IMPORT,
        params={"format": format, **params},
        content=source.encode(),
        headers={**media, **(headers or {})},
    )


async def test_dry_runs_translate_and_store_nothing(api: httpx.AsyncClient) -> None:
    before = await _names(api)
    gcw = await _import(api, ITERATE_MAP, name="sum")
    assert gcw.status_code == 200, gcw.text
    body = gcw.json()
    assert set(body) == {"definition", "valid", "issues", "warnings", "unsupported"}
    assert body["valid"] is True and body["issues"] == [] and body["unsupported"] == []
    assert body["definition"]["name"] == "sum"
    assert [step["id"] for step in body["definition"]["steps"]][:2] == ["assignStep", "sumStep"]

    asl = await _import(api, CHOICE, "asl")
    assert asl.status_code == 200, asl.text
    translated = asl.json()
    assert translated["valid"] is True, translated["issues"]
    ids = [step["id"] for step in translated["definition"]["steps"]]
    assert {"Choice_State_choice", "NEXT_STATE_ONE", "NEXT_STATE_TWO", "DEFAULT_STATE"} <= set(ids)
    # The same source read as YAML (text/yaml) gives the same translation.
    again = await api.post(
        IMPORT, params={"format": "asl"}, content=CHOICE, headers={"Content-Type": "text/yaml"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["definition"]["steps"] == translated["definition"]["steps"]
    assert await _names(api) == before


async def test_saved_gcw_import_is_a_workflow_that_runs(api: httpx.AsyncClient) -> None:
    saved = await _import(api, ITERATE_MAP, save="true", name="sum-map")
    assert saved.status_code == 201, saved.text
    body = saved.json()
    workflow = body["workflow"]
    assert (workflow["name"], workflow["version"]) == ("sum-map", 1)
    assert saved.headers["Location"] == f"{API}/workflows/{workflow['id']}"
    assert body["import"]["valid"] is True

    fetched = await api.get(f"{API}/workflows/{workflow['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["steps"] == workflow["steps"]
    started = await api.post(f"{API}/workflows/{workflow['id']}/execute", json={"input": {}})
    assert started.status_code == 202, started.text
    done = await wait_for(api, started.json()["id"], {"succeeded", "failed"})
    assert (done["status"], done.get("result")) == ("succeeded", 60), done


async def test_saved_asl_import_takes_the_documented_path(api: httpx.AsyncClient) -> None:
    saved = await _import(api, CHOICE, "asl", save="true", name="choice")
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["workflow"]["id"]
    data = {"type": "Private", "value": 25}
    started = await api.post(f"{API}/workflows/{workflow_id}/execute", json={"input": data})
    assert started.status_code == 202, started.text
    done = await wait_for(api, started.json()["id"], {"succeeded", "failed"})
    assert (done["status"], done.get("result")) == ("succeeded", data), done


async def test_unsupported_constructs_block_saving_unless_accepted(api: httpx.AsyncClient) -> None:
    before = await _names(api)
    blocked = await _import(api, ACTIVITY, "asl", save="true", name="activity")
    assert blocked.status_code == 422, blocked.text
    error = error_of(blocked)
    assert error["code"] == "IMPORT_UNSUPPORTED"
    assert error["errors"] and all(e["code"].startswith("ASL_") for e in error["errors"])
    # Pointers into the SOURCE document: each one resolves in it.
    source = json.loads(ACTIVITY)
    for issue in error["errors"]:
        node: Any = source
        for part in issue["path"].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
    assert error["details"]["import"]["valid"] is True
    assert await _names(api) == before

    accepted = await _import(
        api, ACTIVITY, "asl", save="true", name="activity", acceptUnsupported="true"
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["import"]["unsupported"]
    assert await _names(api) == sorted([*before, "activity"])


async def test_an_invalid_translation_is_not_saved(api: httpx.AsyncClient) -> None:
    before = await _names(api)
    dry = await _import(api, EITHER_OR, "asl")
    assert dry.status_code == 200 and dry.json()["valid"] is False
    for accept in ("false", "true"):
        refused = await _import(
            api, EITHER_OR, "asl", save="true", name="either", acceptUnsupported=accept
        )
        assert refused.status_code == 422, refused.text
        error = error_of(refused)
        assert error["code"] == "VALIDATION_FAILED"
        assert [e["path"] for e in error["errors"]] == [i["path"] for i in dry.json()["issues"]]
        assert all(e["path"].startswith("/steps/") for e in error["errors"])
    assert await _names(api) == before


async def test_malformed_requests_are_refused(api: httpx.AsyncClient) -> None:
    cases: list[tuple[Awaitable[httpx.Response], int, str]] = [
        (_import(api, ITERATE_MAP, "bpmn"), 400, "INVALID_INPUT"),
        (_import(api, "main: [unclosed", "gcw"), 400, "IMPORT_SYNTAX"),
        (_import(api, "just text", "asl"), 400, "IMPORT_NOT_OBJECT"),
        (_import(api, '{"foo": 1}', "gcw"), 400, "GCW_NO_MAIN"),
        (_import(api, '{"StartAt": 1}', "asl"), 400, "ASL_NOT_STATE_MACHINE"),
        (_import(api, "", "gcw"), 400, "INVALID_INPUT"),
        (_import(api, "a: 1\n---\nb: 2\n", "gcw"), 400, "IMPORT_NOT_ONE_DOCUMENT"),
        (_import(api, ITERATE_MAP, name=""), 400, "INVALID_INPUT"),
        (_import(api, "x" * (MAX_BODY_BYTES + 1)), 413, "PAYLOAD_TOO_LARGE"),
        (_import(api, json.dumps({"k": list(range(60_000))}), "asl"), 413, "IMPORT_TOO_LARGE"),
        (
            api.post(
                IMPORT,
                params={"format": "gcw"},
                content=b"\xff\xfe",
                headers={"Content-Type": "application/yaml"},
            ),
            400,
            "IMPORT_NOT_TEXT",
        ),
    ]
    for call, status, code in cases:
        response = await call
        assert (response.status_code, error_of(response)["code"]) == (status, code), response.text


async def test_a_name_taken_is_409_unless_new_version(api: httpx.AsyncClient) -> None:
    assert (await _import(api, ITERATE_MAP, save="true", name="twice")).status_code == 201
    again = await _import(api, ITERATE_MAP, save="true", name="twice")
    assert (again.status_code, error_of(again)["code"]) == (409, "WORKFLOW_NAME_TAKEN")
    newer = await _import(api, ITERATE_MAP, save="true", name="twice", onConflict="newVersion")
    assert newer.status_code == 201, newer.text
    assert newer.json()["workflow"]["version"] == 2


async def test_another_tenant_does_not_see_the_import(api: httpx.AsyncClient) -> None:
    saved = await _import(api, ITERATE_MAP, headers={"X-Tenant": "acme"}, save="true", name="t")
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["workflow"]["id"]
    own = await api.get(f"{API}/workflows/{workflow_id}", headers={"X-Tenant": "acme"})
    assert own.status_code == 200
    other = await api.get(f"{API}/workflows/{workflow_id}", headers={"X-Tenant": "globex"})
    assert other.status_code == 404
    assert "t" not in await _names(api, **{"X-Tenant": "globex"})


# -- roles and the OpenAPI document (API keys) --------------------------------------------


@pytest.fixture
def keyed(edge: Edge) -> None:
    """``owner-key`` is an owner, ``viewer-key`` a viewer of the default tenant."""
    principals = {
        hash_api_key("owner-key", "s"): Principal("alice", role=Role.OWNER),
        hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER),
    }
    edge.authenticator = ApiKeyAuthenticator(principals, salt="s")


@pytest.mark.usefixtures("keyed")
async def test_a_viewer_may_translate_but_not_save(api: httpx.AsyncClient) -> None:
    before = await _names(api, **OWNER)
    dry = await _import(api, ITERATE_MAP, headers=VIEWER)
    assert dry.status_code == 200, dry.text
    saved = await _import(api, ITERATE_MAP, headers=VIEWER, save="true", name="viewer")
    assert (saved.status_code, error_of(saved)["code"]) == (403, "FORBIDDEN")
    native = await api.post(IMPORT, json={"name": "n", "steps": []}, headers=VIEWER)
    assert native.status_code == 403  # our own definitions: always a write
    assert (await _import(api, ITERATE_MAP)).status_code == 401
    assert await _names(api, **OWNER) == before


Produce = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def _cases() -> dict[int, Produce]:
    return {
        200: lambda api: _import(api, ITERATE_MAP, headers=OWNER),
        201: lambda api: _import(api, CHOICE, "asl", headers=OWNER, save="true", name="c"),
        400: lambda api: _import(api, "main: [", headers=OWNER),
        401: lambda api: _import(api, ITERATE_MAP),
        403: lambda api: _import(api, ITERATE_MAP, headers=VIEWER, save="true"),
        409: lambda api: _import(api, CHOICE, "asl", headers=OWNER, save="true", name="c"),
        413: lambda api: _import(api, "x" * (MAX_BODY_BYTES + 1), headers=OWNER),
        415: lambda api: api.post(
            IMPORT,
            params={"format": "gcw"},
            content=ITERATE_MAP,
            headers={**OWNER, "Content-Type": "text/plain"},
        ),
        422: lambda api: _import(api, ACTIVITY, "asl", headers=OWNER, save="true"),
    }


@pytest.mark.usefixtures("keyed")
async def test_documented_responses_are_produced_and_match_their_schemas(
    api: httpx.AsyncClient,
) -> None:
    doc = (await api.get(f"{API}/openapi.json")).json()
    operation = doc["paths"][IMPORT]["post"]
    responses = operation["responses"]
    cases = _cases()
    assert set(map(int, responses)) == {*cases, 429}
    assert {"format", "save", "acceptUnsupported", "name", "onConflict"} <= {
        p["name"] for p in operation["parameters"]
    }
    for code, produce in cases.items():
        response = await produce(api)
        assert response.status_code == code, (code, response.text)
        schema = responses[str(code)]["content"]["application/json"]["schema"]
        assert errors(response.json(), schema, doc) == [], code
    native = await api.post(IMPORT, json={"name": "ours", "steps": []}, headers=OWNER)
    assert native.status_code == 422  # our own definitions still go through validation
    schema = responses["201"]["content"]["application/json"]["schema"]
    ours = {
        "name": "ours",
        "steps": [{"id": "s", "type": "transform", "config": {"set": {"a": 1}}}],
    }
    created = await api.post(IMPORT, json=ours, headers=OWNER)
    assert created.status_code == 201, created.text
    assert errors(created.json(), schema, doc) == []
    assert [item["name"] for item in created.json()["items"]] == ["ours"]


async def test_a_wrong_method_names_post_as_allowed(api: httpx.AsyncClient) -> None:
    response = await api.request("OPTIONS", IMPORT, params={"format": "gcw"})
    assert response.status_code == 405
    assert error_of(response)["details"]["allowed"] == ["POST"]
