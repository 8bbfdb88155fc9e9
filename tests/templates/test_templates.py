"""The template gallery: every template instantiated with its example parameters
validates and runs to ``succeeded`` offline (demo service, model recordings); parameter
errors; the REST, GraphQL and ``wfe templates`` edges."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from _cli import run_wfe
from _run import Ran, run_template
from _schema_check import errors

from shared.api.auth import ApiKeyAuthenticator, Authenticator, Principal, Role, hash_api_key
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.composition import build_registry
from shared.engine.validation import validate_definition
from shared.models import ExecutionStatus
from shared.templates import (
    TemplateNotFound,
    TemplateParamsInvalid,
    get_template,
    instantiate,
    list_templates,
)

API = "/api/v1"
OWNER, VIEWER = {"X-API-Key": "owner-key"}, {"X-API-Key": "viewer-key"}
TEMPLATES = list_templates()
IDS = [template.id for template in TEMPLATES]

REQUIRED_KINDS = {
    "approval-escalation": {"wait_for_event", "branch", "http"},
    "order-fulfilment-saga": {"parallel", "http"},
    "scheduled-report": {"publish", "branch"},
    "pubsub-event-enrichment": {"publish", "http"},
    "batch-fan-out": {"map"},
    "webhook-ticket-triage": {"decision"},
    "content-pipeline": {"llm"},
    "incident-escalation": {"wait_for_event", "publish"},
    "data-sync": {"map", "publish"},
    "customer-onboarding": {"wait", "http"},
    "sla-monitor": {"wait_for_event"},
    "human-review-ai": {"llm", "wait_for_event"},
}
"""The issue's list, and the step types each template must show."""


# -- the gallery ---------------------------------------------------------------------------


def test_the_gallery_covers_the_issue_list() -> None:
    assert len(TEMPLATES) >= 12
    assert set(REQUIRED_KINDS) <= set(IDS)
    for template in TEMPLATES:
        assert template.description and template.tags, template.id
        assert template.parameters["examples"], template.id
        kinds = {step["type"] for step in instantiate(template.id, template.example)["steps"]}
        assert REQUIRED_KINDS.get(template.id, set()) <= kinds, template.id


@pytest.mark.parametrize("template_id", IDS)
def test_example_and_defaults_validate(template_id: str) -> None:
    template = get_template(template_id)
    for parameters in (template.example, {}):
        definition = instantiate(template_id, parameters)
        validate_definition(definition, build_registry())


def _check_run(template_id: str, ran: Ran) -> None:
    """Facts of each run beyond its status, so a template cannot pass by doing nothing."""
    result = ran.execution.result
    example = get_template(template_id).example
    if template_id == "approval-escalation":
        assert result["path"] == "escalated after EVENT_TIMEOUT"
        assert result["decision"] == "approved"  # 420 <= the limit of 500
        assert ran.notifications[0]["to"] == example["approverChannel"]
    elif template_id == "order-fulfilment-saga":
        assert result["status"] == "fulfilled" and result["trackingNumber"].startswith("1Z")
    elif template_id == "batch-fan-out":
        assert result["total"] == len(example["records"])
        assert len(ran.steps("enrich_record")) == len(example["records"])
    elif template_id == "webhook-ticket-triage":
        assert (result["slaHours"], result["decidedBy"]) == (4, "history")
    elif template_id == "content-pipeline":
        assert result["modelSource"] == "recording"
        assert result["shortTitle"] == "Workflow Engine 1.0 is here"
    elif template_id == "human-review-ai":
        assert (result["confidence"], result["outcome"]) == (0.62, "on-hold")
    elif template_id == "incident-escalation":
        assert result["level"] == "manager"
        assert [n["to"] for n in ran.notifications] == [
            example["primary"],
            example["secondary"],
            example["manager"],
        ]
    elif template_id == "data-sync":
        assert result == {"partitions": 4, "written": 4}
    elif template_id == "customer-onboarding":
        assert result["accountManager"].startswith("dedicated manager")
    elif template_id == "sla-monitor":
        assert result["status"] == "breached"


@pytest.mark.parametrize("template_id", IDS)
async def test_example_runs_to_succeeded_offline(tmp_path: Path, template_id: str) -> None:
    ran = await run_template(tmp_path / "t.db", template_id, get_template(template_id).example)
    assert ran.execution.status == ExecutionStatus.SUCCEEDED, ran.execution.error
    _check_run(template_id, ran)


async def test_an_event_takes_the_other_path(tmp_path: Path) -> None:
    """The SLA monitor with the ``resolved`` event sent: the SLA is met, nothing announced."""
    parameters = {**get_template("sla-monitor").example, "slaSeconds": 30}
    ran = await run_template(
        tmp_path / "t.db", "sla-monitor", parameters, events={"resolved": {"by": "maria"}}
    )
    assert ran.execution.status == ExecutionStatus.SUCCEEDED, ran.execution.error
    assert ran.execution.result == {"caseId": "CASE-5521", "status": "met", "resolvedBy": "maria"}
    assert ran.notifications == []


async def test_a_declined_charge_is_compensated(tmp_path: Path) -> None:
    """Above the demo card limit the charge is declined (402, not retried): the saga
    releases the reservation, tells the customer and ends with the order cancelled."""
    example = get_template("order-fulfilment-saga").example
    order = {**example["order"], "amount": 20_000}
    ran = await run_template(
        tmp_path / "t.db", "order-fulfilment-saga", {**example, "order": order}
    )
    assert ran.execution.status == ExecutionStatus.SUCCEEDED, ran.execution.error
    assert ran.execution.result == {
        "orderId": "ORD-1001",
        "status": "cancelled",
        "compensated": True,
    }
    (charge,) = ran.steps("charge_payment")
    assert charge.error is not None and charge.error.code == "HTTP_402"
    assert ran.steps("create_label") == []
    assert [n["channel"] for n in ran.notifications] == ["inventory", "email"]
    assert "Release reservation res_" in ran.notifications[0]["message"]


async def test_the_approver_answers(tmp_path: Path) -> None:
    parameters = {**get_template("approval-escalation").example, "timeoutSeconds": 30}
    answer = {"approval": {"approved": False, "by": "maria"}}
    ran = await run_template(tmp_path / "t.db", "approval-escalation", parameters, events=answer)
    assert ran.execution.status == ExecutionStatus.SUCCEEDED, ran.execution.error
    assert ran.execution.result["decision"] == "rejected"
    assert (ran.execution.result["decidedBy"], ran.execution.result["path"]) == (
        "maria",
        "approver",
    )


# -- parameters ----------------------------------------------------------------------------


def _issues(template_id: str, parameters: Any) -> list[tuple[str, str]]:
    with pytest.raises(TemplateParamsInvalid) as caught:
        instantiate(template_id, parameters)
    assert caught.value.code == "TEMPLATE_PARAMS_INVALID"
    return sorted((issue.code, issue.path) for issue in caught.value.issues)


def test_parameter_errors_have_codes_and_pointers() -> None:
    bad_order = {
        "order": {
            "orderId": "",
            "email": "a@b.c",
            "address": "x",
            "amount": -1,
            "currency": "EUR",
            "items": [{"sku": "S", "qty": 0}, {"qty": 1}],
        },
        "paymentAttempts": "three",
        "nope": 1,
    }
    assert _issues("order-fulfilment-saga", bad_order) == [
        ("REQUIRED", "/order/items/1/sku"),
        ("TOO_SHORT", "/order/orderId"),
        ("TOO_SMALL", "/order/amount"),
        ("TOO_SMALL", "/order/items/0/qty"),
        ("UNKNOWN_PARAMETER", "/nope"),
        ("WRONG_TYPE", "/paymentAttempts"),
    ]
    assert _issues("scheduled-report", {"reportTopic": "no spaces allowed"}) == [
        ("PATTERN_MISMATCH", "/reportTopic")
    ]
    assert _issues("webhook-ticket-triage", {"customerTier": "diamond"}) == [
        ("NOT_IN_ENUM", "/customerTier")
    ]
    assert _issues("sla-monitor", ["not", "an", "object"]) == [("WRONG_TYPE", "")]
    assert _issues("batch-fan-out", {"weird/name~": 1}) == [("UNKNOWN_PARAMETER", "/weird~1name~0")]


def test_defaults_fill_what_is_not_given() -> None:
    definition = instantiate("scheduled-report", {"revenueTarget": 1})
    assert definition["variables"]["revenueTarget"] == 1
    assert definition["trigger"]["cron"] == "0 8 * * 1-5"
    assert definition["steps"][-1]["config"]["topic"] == "reports"
    assert instantiate("scheduled-report", {}, name="mine")["name"] == "mine"


def test_unknown_template() -> None:
    with pytest.raises(TemplateNotFound) as caught:
        instantiate("no-such-template", {})
    assert caught.value.code == "TEMPLATE_NOT_FOUND"


# -- REST ----------------------------------------------------------------------------------


@pytest.fixture
def authenticator() -> Authenticator:
    """``owner-key`` is an owner, ``viewer-key`` a viewer of the default tenant."""
    principals = {
        hash_api_key("owner-key", "s"): Principal("alice", role=Role.OWNER),
        hash_api_key("viewer-key", "s"): Principal("bob", role=Role.VIEWER),
    }
    return ApiKeyAuthenticator(principals, salt="s")


@pytest.fixture
async def doc(edge: Edge) -> AsyncIterator[dict[str, Any]]:
    yield create_management_app(edge, lifespan=False).openapi()


def _schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    content = doc["paths"][path][method]["responses"][str(status)]["content"]
    found: dict[str, Any] = content["application/json"]["schema"]
    return found


async def test_rest_list_and_get(api: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    assert (await api.get(f"{API}/templates")).status_code == 401
    listing = await api.get(f"{API}/templates", headers=VIEWER)
    assert listing.status_code == 200, listing.text
    assert errors(listing.json(), _schema(doc, "/api/v1/templates", "get", 200), doc) == []
    items = listing.json()["items"]
    assert [item["id"] for item in items] == IDS
    assert set(items[0]) == {"id", "name", "description", "tags", "parameters"}
    one = await api.get(f"{API}/templates/sla-monitor", headers=VIEWER)
    assert one.status_code == 200
    assert one.json()["definition"]["steps"][0]["config"]["event"] == "resolved"
    missing = await api.get(f"{API}/templates/nope", headers=VIEWER)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "TEMPLATE_NOT_FOUND")


async def test_rest_instantiate_and_save(api: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    url = f"{API}/templates/scheduled-report/instantiate"
    path = "/api/v1/templates/{template_id}/instantiate"
    dry = await api.post(url, json={"parameters": {"revenueTarget": 10}}, headers=VIEWER)
    assert dry.status_code == 200, dry.text
    assert errors(dry.json(), _schema(doc, path, "post", 200), doc) == []
    assert dry.json()["definition"]["variables"]["revenueTarget"] == 10
    assert "workflow" not in dry.json()
    assert (await api.get(f"{API}/workflows", headers=VIEWER)).json()["items"] == []

    refused = await api.post(url, json={"save": True}, headers=VIEWER)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "FORBIDDEN")

    saved = await api.post(url, json={"save": True, "name": "my-report"}, headers=OWNER)
    assert saved.status_code == 201, saved.text
    assert errors(saved.json(), _schema(doc, path, "post", 201), doc) == []
    workflow = saved.json()["workflow"]
    assert saved.headers["Location"] == f"{API}/workflows/{workflow['id']}"
    got = await api.get(f"{API}/workflows/{workflow['id']}", headers=VIEWER)
    assert got.status_code == 200
    assert (got.json()["name"], got.json()["owner"]) == ("my-report", "alice")
    assert got.json()["trigger"]["cron"] == "0 8 * * 1-5"

    again = await api.post(url, json={"save": True, "name": "my-report"}, headers=OWNER)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "WORKFLOW_NAME_TAKEN")


async def test_rest_errors_store_nothing(api: httpx.AsyncClient) -> None:
    url = f"{API}/templates/batch-fan-out/instantiate"
    bad = await api.post(
        url, json={"parameters": {"concurrency": 0, "records": []}, "save": True}, headers=OWNER
    )
    assert bad.status_code == 400, bad.text
    error = bad.json()["error"]
    assert error["code"] == "TEMPLATE_PARAMS_INVALID"
    assert sorted(e["path"] for e in error["errors"]) == ["/concurrency", "/records"]
    missing = await api.post(f"{API}/templates/nope/instantiate", json={}, headers=OWNER)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "TEMPLATE_NOT_FOUND")
    loose = await api.post(url, json={"save": 0, "parameters": {}}, headers=OWNER)
    assert loose.status_code == 422, loose.text  # save is a boolean, not a truthy value
    report = f"{API}/templates/scheduled-report/instantiate"
    bad_cron = {"parameters": {"cron": "every day at noon"}, "save": True}
    invalid = await api.post(report, json=bad_cron, headers=OWNER)
    assert invalid.status_code == 422, invalid.text  # fits the schema, not a valid workflow
    assert invalid.json()["error"]["code"] == "VALIDATION_FAILED"
    assert invalid.json()["error"]["path"] == "/trigger/cron"
    assert (await api.get(f"{API}/workflows", headers=OWNER)).json()["items"] == []


# -- GraphQL -------------------------------------------------------------------------------

INSTANTIATE = """
mutation($id: ID!, $parameters: JSON, $name: String, $save: Boolean!) {
  instantiateTemplate(id: $id, parameters: $parameters, name: $name, save: $save) {
    __typename
    ... on TemplateInstance { definition workflow { id name version } }
    ... on UserError { code path }
    ... on ValidationErrors { issues { code path } }
  }
}"""


async def _gql(
    api: httpx.AsyncClient, query: str, headers: dict[str, str] = OWNER, **variables: Any
) -> dict[str, Any]:
    body = {"query": query, "variables": variables}
    response = await api.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


async def test_graphql_templates_and_instantiate(api: httpx.AsyncClient) -> None:
    listed = await _gql(
        api, '{ templates { id tags parameters } template(id: "data-sync") { name } }'
    )
    assert [t["id"] for t in listed["templates"]] == IDS
    assert listed["template"]["name"] == "Data sync with retries"
    assert (await _gql(api, '{ template(id: "nope") { id } }'))["template"] is None

    made = await _gql(
        api, INSTANTIATE, id="data-sync", parameters={"concurrency": 7}, name="sync", save=True
    )
    payload = made["instantiateTemplate"]
    assert payload["__typename"] == "TemplateInstance", payload
    assert payload["definition"]["steps"][0]["config"]["concurrency"] == 7
    assert payload["workflow"]["name"] == "sync"
    got = await api.get(f"{API}/workflows/{payload['workflow']['id']}", headers=OWNER)
    assert got.json()["steps"][0]["config"]["concurrency"] == 7

    bad = await _gql(api, INSTANTIATE, id="data-sync", parameters={"concurrency": "x"}, save=False)
    payload = bad["instantiateTemplate"]
    assert (payload["__typename"], payload["code"]) == (
        "ValidationErrors",
        "TEMPLATE_PARAMS_INVALID",
    )
    assert payload["issues"] == [{"code": "WRONG_TYPE", "path": "/concurrency"}]
    viewer = await _gql(api, INSTANTIATE, VIEWER, id="data-sync", name="v", save=True)
    assert viewer["instantiateTemplate"]["code"] == "FORBIDDEN"
    dry = await _gql(api, INSTANTIATE, VIEWER, id="data-sync", save=False)
    assert dry["instantiateTemplate"]["workflow"] is None
    names = [w["name"] for w in (await api.get(f"{API}/workflows", headers=OWNER)).json()["items"]]
    assert names == ["sync"]
    missing = await _gql(api, INSTANTIATE, id="nope", save=False)
    assert missing["instantiateTemplate"]["code"] == "TEMPLATE_NOT_FOUND"


# -- CLI -----------------------------------------------------------------------------------


def test_cli_new_output_validates(tmp_path: Path) -> None:
    listed = run_wfe(tmp_path, "templates", "list", "--json")
    assert listed.code == 0, listed.output
    assert [t["id"] for t in listed.json()] == IDS
    out = tmp_path / "incident.json"
    params = tmp_path / "params.yaml"
    params.write_text("incident: {id: I-9, service: db, severity: sev1, summary: down}\n")
    made = run_wfe(
        tmp_path,
        "templates",
        "new",
        "incident-escalation",
        "--params-file",
        params,
        "--param",
        "ackTimeoutSeconds=30",
        "--param",
        "primary=sam@example.com",
        "--out",
        out,
    )
    assert made.code == 0, made.output
    definition = json.loads(out.read_text())
    assert definition["variables"]["incident"]["id"] == "I-9"
    assert definition["variables"]["primary"] == "sam@example.com"
    assert definition["steps"][1]["config"]["timeoutSeconds"] == 30
    checked = run_wfe(tmp_path, "validate", out)
    assert checked.code == 0 and ": ok (" in checked.stdout, checked.output

    saved = run_wfe(
        tmp_path, "templates", "new", "sla-monitor", "--save", "--db", tmp_path / "w.db"
    )
    assert saved.code == 0, saved.output
    assert "saved workflow sla-monitor v1" in saved.stderr
    workflows = run_wfe(tmp_path, "workflows", "list", "--json", "--db", tmp_path / "w.db")
    assert [w["name"] for w in workflows.json()] == ["sla-monitor"]

    refused = run_wfe(tmp_path, "templates", "new", "sla-monitor", "--param", "slaSeconds=-1")
    assert refused.code == 1
    assert "TEMPLATE_PARAMS_INVALID  TOO_SMALL  /slaSeconds" in refused.stderr
    unknown = run_wfe(tmp_path, "templates", "show", "nope")
    assert unknown.code == 1 and "TEMPLATE_NOT_FOUND" in unknown.stderr
