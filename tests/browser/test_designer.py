"""The designer in a real browser: type a definition, see the API's validation error on
the right graph node and in the editor, fix it, create, save a version, compare
versions, and start an execution; the palette's skeletons validate; hostile text in a
definition renders as text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytestmark = pytest.mark.slow

BROKEN = """name: designer-demo
description: Made in the designer test.
tags: [designer]
steps:
  - id: greet
    type: transform
    config:
      set:
        greeting: hello
    nextSteps: [check]
  - id: check
    type: transform
    config:
      set:
        checked: true
    nextSteps: [nowhere]
"""
FIXED = BROKEN.replace("    nextSteps: [nowhere]\n", "")
HOSTILE = """name: hostile-designer
steps:
  - id: first
    name: "<img src=x onerror=alert(1)>"
    type: transform
    config: {set: {x: 1}}
    nextSteps: ["<script>alert(2)</script>"]
"""

INVALID = "status of 422"
"""Chromium logs the validate endpoint's 422 (an invalid definition) as a console error."""


def _type(page: Any, text: str) -> None:
    """Replace the editor's whole text, as a user pasting it would."""
    content = page.locator(".cm-content")
    content.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_design_validate_fix_save_and_run(
    console_server: Any,
    page: Any,
    problems: Any,
    api: httpx.Client,
    shot: Callable[[Any, str], Path],
) -> None:
    from playwright.sync_api import expect

    problems.expected.append(INVALID)
    page.goto(console_server.console + "#/workflows/new")
    expect(page.locator(".cm-content")).to_be_visible()
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    _type(page, BROKEN)

    # The API's UNKNOWN_NEXT_STEP lands on the step "check": its graph node and the
    # editor's diagnostic on the "nowhere" reference.
    node = page.locator(".designer-graph [data-step-id=check]")
    expect(node).to_have_class("node has-error")
    expect(node).to_have_attribute("data-error", "nextSteps names unknown step 'nowhere'")
    expect(page.locator(".designer-graph .has-error")).to_have_count(1)
    expect(page.locator(".cm-lintRange-error")).to_have_text("nowhere")
    expect(page.locator(".validity")).to_have_attribute("data-valid", "false")
    expect(page.locator(".problems")).to_contain_text("/steps/1/nextSteps/0")
    shot(page, "designer-error")

    _type(page, FIXED)
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    expect(page.locator(".designer-graph .has-error")).to_have_count(0)
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)

    # Clicking a node (or Enter on it) selects its step in the editor.
    page.locator(".designer-graph [data-step-id=greet]").click()
    assert "id: greet" in page.evaluate("document.getSelection().toString()")
    page.locator(".designer-graph [data-step-id=check]").focus()
    page.keyboard.press("Enter")
    assert "id: check" in page.evaluate("document.getSelection().toString()")

    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"#/workflows/[0-9a-f-]{36}$"))
    workflow_id = page.url.rsplit("/", 1)[1]
    assert api.get(f"/workflows/{workflow_id}").json()["name"] == "designer-demo"
    expect(page.locator(".designer-graph [data-step-id=check]")).to_be_visible()
    shot(page, "designer")

    # A second version, then the two side by side.
    _type(page, FIXED.replace("greeting: hello", "greeting: bonjour"))
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".toast", has_text="Saved version 2")).to_be_visible()
    assert api.get(f"/workflows/{workflow_id}").json()["version"] == 2
    page.get_by_role("button", name="Compare versions").click()
    expect(page.locator("table.diff .diff-del")).to_contain_text("greeting: hello")
    expect(page.locator("table.diff .diff-add")).to_contain_text("greeting: bonjour")
    page.locator(".compare").scroll_into_view_if_needed()
    shot(page, "designer-compare")

    # Back to version 1: it goes into the editor, and Save makes it version 3.
    expect(page.locator("#compare-left")).to_have_value("1")
    page.get_by_role("button", name="Edit the older version").click()
    expect(page.locator(".cm-content")).to_contain_text("greeting: hello")
    expect(page.locator(".designer-toolbar")).to_contain_text("editing a copy of v1")
    shot(page, "designer-restore")
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".toast", has_text="Saved version 3")).to_be_visible()
    restored = api.get(f"/workflows/{workflow_id}").json()
    assert restored["version"] == 3
    assert restored["steps"][0]["config"] == {"set": {"greeting": "hello"}}
    expect(page.locator(".compare")).to_have_count(0)

    page.get_by_role("button", name="Run").click()
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"#/executions/[^/]+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    execution = api.get(f"/executions/{execution_id}").json()
    assert execution["workflowId"] == workflow_id


def test_every_palette_skeleton_is_valid(console_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(console_server.console + "#/workflows/new")
    validity = page.locator(".validity")
    expect(validity).to_have_attribute("data-valid", "true")
    items = page.locator(".palette-item")
    types = items.evaluate_all("els => els.map(e => e.dataset.stepType)")
    assert {"decision", "llm", "transform", "http", "parallel", "map", "branch"} <= set(types)
    for step_type in types:
        page.locator(f".palette-item[data-step-type={step_type}]").click()
        expect(page.locator(f".designer-graph [data-type={step_type}]").first).to_be_visible()
        expect(validity).to_have_attribute("data-valid", "true")
    shot_ok = page.locator(".designer-graph [data-step-id]").count()
    assert shot_ok >= len(types)


def test_hostile_text_in_a_definition_renders_as_text(
    console_server: Any, page: Any, problems: Any
) -> None:
    from playwright.sync_api import expect

    problems.expected.append(INVALID)
    page.goto(console_server.console + "#/workflows/new")
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    _type(page, HOSTILE)
    graph = page.locator(".designer-graph")
    expect(graph.locator("[data-step-id=first]")).to_have_class("node has-error")
    expect(graph.locator("[data-step-id=first] text.label")).to_contain_text("<img src=x onerror=")
    expect(graph.locator('[data-step-id="<script>alert(2)</script>"]')).to_have_count(1)
    expect(page.locator(".problems")).to_contain_text("<script>alert(2)</script>")
    assert page.locator(".designer-graph img, .problems img, .designer-graph script").count() == 0


def test_json_errors_land_at_their_pointer_too(
    console_server: Any, page: Any, problems: Any
) -> None:
    from playwright.sync_api import expect

    problems.expected.append(INVALID)
    page.goto(console_server.console + "#/workflows/new")
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    page.get_by_label("Format").select_option("json")
    expect(page.locator(".cm-content")).to_contain_text('"name": "my-workflow"')
    _type(page, json.dumps(yaml.safe_load(BROKEN), indent=2))
    expect(page.locator(".designer-graph [data-step-id=check]")).to_have_class("node has-error")
    expect(page.locator(".cm-lintRange-error")).to_have_text('"nowhere"')
    _type(page, json.dumps(yaml.safe_load(FIXED), indent=2))
    expect(page.locator(".validity")).to_have_attribute("data-valid", "true")
    page.get_by_label("Format").select_option("yaml")
    expect(page.locator(".cm-content")).to_contain_text("name: designer-demo")
