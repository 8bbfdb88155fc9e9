"""The ``importWorkflow`` mutation: dry run, save (then run it), refusals as union members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _graphql import data, execute, settle, wait_for_status

from shared.api.auth import ApiKeyAuthenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.composition import LocalRuntime

CORPUS = Path(__file__).resolve().parents[1] / "import" / "corpus"
ITERATE_MAP = (CORPUS / "gcw" / "iterate_map.workflows.yaml").read_text()
ACTIVITY = (CORPUS / "asl" / "activity-state-machine.activity_state.asl.json").read_text()

IMPORT = """
mutation($format: ImportFormat!, $source: String!, $save: Boolean! = false,
         $accept: Boolean! = false, $name: String) {
  importWorkflow(format: $format, source: $source, save: $save,
                 acceptUnsupported: $accept, name: $name) {
    __typename
    ... on WorkflowImport {
      definition valid
      issues { code path }
      warnings { code path }
      unsupported { code message path }
      workflow { id name version }
    }
    ... on UserError { code message }
    ... on ValidationErrors { issues { code path } }
  }
}
"""


@pytest.fixture(autouse=True)
async def quiet_runtime(runtime: LocalRuntime) -> AsyncIterator[None]:
    yield
    await settle(runtime)


async def _import(api: httpx.AsyncClient, **variables: Any) -> dict[str, Any]:
    found = await data(api, IMPORT, variables)
    result: dict[str, Any] = found["importWorkflow"]
    return result


async def _names(api: httpx.AsyncClient) -> list[str]:
    found = await data(api, "{ workflows { name } }")
    return sorted(w["name"] for w in found["workflows"])


async def test_dry_run_then_save_then_run(api: httpx.AsyncClient) -> None:
    dry = await _import(api, format="GCW", source=ITERATE_MAP, name="sum")
    assert dry["__typename"] == "WorkflowImport"
    assert (dry["valid"], dry["workflow"], dry["unsupported"]) == (True, None, [])
    assert dry["definition"]["name"] == "sum"
    assert await _names(api) == []

    saved = await _import(api, format="GCW", source=ITERATE_MAP, name="sum", save=True)
    assert saved["__typename"] == "WorkflowImport", saved
    workflow = saved["workflow"]
    assert (workflow["name"], workflow["version"]) == ("sum", 1)
    assert saved["definition"] == dry["definition"]
    assert await _names(api) == ["sum"]
    execution_id = await execute(api, workflow["id"])
    await wait_for_status(api, execution_id, {"SUCCEEDED"})
    found = await data(
        api, "query($id: ID!) { execution(id: $id) { result } }", {"id": execution_id}
    )
    assert found["execution"]["result"] == 60


async def test_unsupported_and_unreadable_sources_are_refused_in_the_payload(
    api: httpx.AsyncClient,
) -> None:
    dry = await _import(api, format="ASL", source=ACTIVITY)
    assert dry["unsupported"] and dry["unsupported"][0]["path"].startswith("/States/")
    blocked = await _import(api, format="ASL", source=ACTIVITY, save=True, name="a")
    assert (blocked["__typename"], blocked["code"]) == ("ValidationErrors", "IMPORT_UNSUPPORTED")
    assert [i["path"] for i in blocked["issues"]] == [u["path"] for u in dry["unsupported"]]
    assert await _names(api) == []
    accepted = await _import(api, format="ASL", source=ACTIVITY, save=True, accept=True, name="a")
    assert accepted["workflow"]["name"] == "a"

    bad = await _import(api, format="GCW", source="main: [")
    assert (bad["__typename"], bad["code"]) == ("ValidationErrors", "IMPORT_SYNTAX")
    laughs = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
    bomb = await _import(api, format="GCW", source=laughs)
    assert (bomb["__typename"], bomb["code"]) == ("ValidationErrors", "IMPORT_YAML_REFUSED")
    assert await _names(api) == ["a"]


async def test_a_viewer_may_translate_but_not_save(api: httpx.AsyncClient, edge: Edge) -> None:
    principals = {hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER)}
    edge.authenticator = ApiKeyAuthenticator(principals, salt="s")

    async def run(save: bool) -> dict[str, Any]:
        variables = {"format": "GCW", "source": ITERATE_MAP, "save": save, "name": "v"}
        response = await api.post(
            "/graphql",
            json={"query": IMPORT, "variables": variables},
            headers={"X-API-Key": "viewer-key"},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["data"]["importWorkflow"]
        return result

    assert (await run(False))["valid"] is True
    refused = await run(True)
    assert (refused["__typename"], refused["code"]) == ("ForbiddenError", "FORBIDDEN")
