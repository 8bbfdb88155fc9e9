"""Hostile template parameters: values that look like expressions or code are data.

A parameter lands only where its placeholder stands, as a whole value; strings go only
to data sites (initial variables, description, tags) or, matching a plain-name
pattern, to name sites (cron, time zone, topics, event names); everywhere else only
numbers and booleans. Oversized or deeply nested parameters are refused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "templates"))

from _run import run_template

from shared.models import ExecutionStatus
from shared.templates import TemplateParamsInvalid, get_template, instantiate
from shared.templates.catalog import MAX_PARAMETERS_BYTES, TemplateBroken, load_template

HOSTILE = [
    "${vars.autoApproveLimit}",
    "${execution.id + string(1/0)}",
    "{{param: timeoutSeconds}}",
    "{{ param: serviceUrl }}",
    "__import__('os').system('touch /tmp/pwned')",
    "env:WFE_SECRET_EXPENSES_WEBHOOK",
    "}} ${ {{",
]


def _without(definition: dict[str, Any], *names: str) -> dict[str, Any]:
    variables = {k: v for k, v in definition["variables"].items() if k not in names}
    return {**definition, "variables": variables}


@pytest.mark.parametrize("text", HOSTILE)
def test_strings_land_only_at_their_placeholder(text: str) -> None:
    example = get_template("approval-escalation").example
    hostile = {**example, "approverChannel": text, "request": {**example["request"], "id": text}}
    made = instantiate("approval-escalation", hostile)
    plain = instantiate("approval-escalation", example)
    assert made["variables"]["approverChannel"] == text
    assert made["variables"]["request"]["id"] == text
    # Everything else, steps and expressions included, is what benign values give.
    assert _without(made, "approverChannel", "request") == _without(
        plain, "approverChannel", "request"
    )


def test_an_object_cannot_add_steps() -> None:
    example = get_template("batch-fan-out").example
    injected = {"email": "a@b.io", "steps": [{"id": "evil", "type": "http"}], "output": "${1}"}
    made = instantiate("batch-fan-out", {**example, "records": [injected]})
    assert made["variables"]["records"] == [injected]
    assert [s["id"] for s in made["steps"]] == [
        s["id"] for s in instantiate("batch-fan-out", example)["steps"]
    ]
    assert "evil" not in str(made["steps"]) and made["output"]["total"] == "${size(vars.processed)}"


async def test_expression_text_is_delivered_verbatim(tmp_path: Path) -> None:
    """At run time the engine splices the variable's text; it does not evaluate it."""
    example = get_template("approval-escalation").example
    reason = "${vars.autoApproveLimit} {{param: autoApproveLimit}} __import__('os')"
    parameters = {**example, "request": {**example["request"], "reason": reason}}
    ran = await run_template(tmp_path / "t.db", "approval-escalation", parameters)
    assert ran.execution.status == ExecutionStatus.SUCCEEDED, ran.execution.error
    assert ran.notifications[0]["message"].endswith(f"for {reason} (grace@example.com)")


@pytest.mark.parametrize(
    ("template_id", "parameters", "expected"),
    [
        ("scheduled-report", {"cron": "${vars.x}"}, ("NOT_A_NAME", "/cron")),
        ("scheduled-report", {"timezone": "{{param: cron}}"}, ("NOT_A_NAME", "/timezone")),
        ("scheduled-report", {"cron": "0 8 * * 1'); x('"}, ("NOT_A_NAME", "/cron")),
        ("scheduled-report", {"reportTopic": "${1}"}, ("PATTERN_MISMATCH", "/reportTopic")),
        ("sla-monitor", {"slaSeconds": "${1}"}, ("WRONG_TYPE", "/slaSeconds")),
        ("batch-fan-out", {"concurrency": {"$ref": "x"}}, ("WRONG_TYPE", "/concurrency")),
    ],
)
def test_code_cannot_reach_name_or_number_sites(
    template_id: str, parameters: dict[str, Any], expected: tuple[str, str]
) -> None:
    with pytest.raises(TemplateParamsInvalid) as caught:
        instantiate(template_id, parameters)
    assert [(i.code, i.path) for i in caught.value.issues] == [expected]


TEMPLATE = """
id: {id}
name: T
description: d
tags: []
parameters:
  type: object
  additionalProperties: false
  properties:
    x: {{ type: {kind}, default: {default} }}
  examples: [{{}}]
definition:
  name: t
  steps:
    - id: s
      type: http
      config:
        url: {url}
"""


@pytest.mark.parametrize(
    ("kind", "default", "url", "problem"),
    [
        ("string", "a", '"{{param: x}}"', "may not be"),  # a string in a rendered field
        ("object", "{}", '"{{param: x}}"', "may not be"),
        ("string", "a", '"https://h/{{param: x}}"', "stray placeholder"),  # no splicing
        ("string", "a", '"{{param: y}}"', "unknown parameter"),
    ],
)
def test_a_template_with_unsafe_placeholders_does_not_load(
    tmp_path: Path, kind: str, default: str, url: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TEMPLATE.format(id="bad", kind=kind, default=default, url=url))
    with pytest.raises(TemplateBroken, match=problem):
        load_template(path)


def test_oversized_and_deep_parameters_are_refused() -> None:
    huge = {"records": [{"email": "a" * 1000 + "@x.io"} for _ in range(40)]}
    with pytest.raises(TemplateParamsInvalid) as caught:
        instantiate("batch-fan-out", huge)
    assert [(i.code, i.path) for i in caught.value.issues] == [("PARAMETERS_TOO_LARGE", "")]
    assert MAX_PARAMETERS_BYTES < 64 * 1024
    deep: dict[str, Any] = {"email": "a@b.io"}
    for _ in range(20):
        deep = {"nested": deep}
    with pytest.raises(TemplateParamsInvalid) as caught:
        instantiate("batch-fan-out", {"records": [deep]})
    assert caught.value.issues[0].code == "PARAMETERS_TOO_DEEP"


async def test_oversized_parameters_over_http(api: httpx.AsyncClient) -> None:
    url = "/api/v1/templates/batch-fan-out/instantiate"
    records = [{"email": "a" * 1000 + "@x.io"} for _ in range(40)]
    response = await api.post(url, json={"parameters": {"records": records}})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["errors"][0]["code"] == "PARAMETERS_TOO_LARGE"
    flood = await api.post(url, content=b'{"parameters": {"x": "' + b"a" * 2_000_000 + b'"}}')
    assert flood.status_code == 413, flood.text
    assert (await api.get("/api/v1/workflows")).json()["items"] == []
