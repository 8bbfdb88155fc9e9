"""The workflows list in a real browser: stats and last run per workflow, search, tag
and active filters, import (paste), export (download), delete (confirm), and a hostile
workflow name rendered as text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"


def _create(api: httpx.Client, name: str, tags: list[str], active: bool = True) -> str:
    body = {
        "name": name,
        "tags": tags,
        "isActive": active,
        "steps": [{"id": "only", "type": "transform", "config": {"set": {"x": 1}}}],
    }
    answer = api.post("/workflows", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _finished(api: httpx.Client, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    """Read the execution until it has finished (a condition with a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution: dict[str, Any] = api.get(f"/executions/{execution_id}").json()
        if execution["status"] in {"succeeded", "failed", "cancelled", "timed_out"}:
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish")


def test_list_filters_and_stats(
    console_server: Any, page: Any, api: httpx.Client, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    ran = _create(api, "list-ran", ["billing", "nightly"])
    _create(api, "list-idle", ["billing"], active=False)
    started = api.post(f"/workflows/{ran}/execute", json={"input": {}})
    assert started.status_code == 202, started.text
    assert _finished(api, started.json()["id"])["status"] == "succeeded"

    page.goto(console_server.console + "#/workflows")
    row = page.locator(f"tr[data-workflow-id='{ran}']")
    expect(row.locator(".last-run .badge")).to_have_text("succeeded")
    expect(row.locator("td").nth(4)).to_have_text("100%")
    expect(row.locator("td").nth(5)).not_to_have_text("—")
    expect(row.locator(".tag")).to_have_text(["billing", "nightly"])
    shot(page, "workflows")

    page.get_by_label("Search workflows").fill("list-")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Active only").check()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr .wf-name")).to_have_text("list-ran")
    page.get_by_label("Active only").uncheck()
    page.get_by_label("Search workflows").fill("")
    page.locator(".tag-filter button.tag", has_text="nightly").click()
    expect(page.locator("tbody tr .wf-name")).to_have_text(["list-ran"])
    assert "tags=nightly" in page.url
    page.locator(".tag-filter button.tag", has_text="nightly").click()
    expect(page.locator("tbody tr").nth(2)).to_be_visible()


def test_import_export_delete(
    console_server: Any, page: Any, api: httpx.Client, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(console_server.console + "#/workflows")
    page.get_by_role("button", name="Import", exact=True).first.click()
    page.get_by_label("Or paste JSON or YAML").fill(
        "name: imported-a\nsteps:\n  - {id: a, type: transform, config: {set: {x: 1}}}\n"
        "---\nname: imported-b\nsteps:\n  - {id: b, type: wait, config: {seconds: 1}}\n"
    )
    shot(page, "workflows-import")
    page.get_by_role("button", name="Import", exact=True).last.click()
    expect(page.locator(".toast", has_text="Imported 2 workflow(s)")).to_be_visible()
    row = page.locator("tr", has=page.locator(".wf-name", has_text="imported-a"))
    expect(row).to_have_count(1)

    row.get_by_role("button", name="Export imported-a").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="YAML").click()
    saved = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == "imported-a.yaml"
    assert "name: imported-a" in saved and "id: a" in saved

    row.get_by_role("button", name="Delete imported-a").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("imported-a")
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    names = [w["name"] for w in api.get("/workflows", params={"limit": 100}).json()["items"]]
    assert "imported-a" not in names and "imported-b" in names


def test_an_invalid_import_shows_its_errors(
    console_server: Any, page: Any, problems: Any, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    problems.expected.append("status of 422")
    page.goto(console_server.console + "#/workflows")
    page.get_by_role("button", name="Import", exact=True).first.click()
    page.get_by_label("Or paste JSON or YAML").fill(
        '[{"name": "bad-import", "steps": [{"id": "a", "type": "transform", '
        '"nextSteps": ["<b>nope</b>"]}]}]'
    )
    page.get_by_role("button", name="Import", exact=True).last.click()
    errors = page.get_by_role("dialog").locator(".error-list")
    expect(errors).to_contain_text("/0/steps/0/nextSteps/0")
    expect(errors).to_contain_text("<b>nope</b>")
    assert page.get_by_role("dialog").locator("b").count() == 0
    page.get_by_role("button", name="Cancel").click()
    names = [w["name"] for w in api.get("/workflows", params={"limit": 100}).json()["items"]]
    assert "bad-import" not in names


def test_a_hostile_name_renders_as_text(
    console_server: Any, page: Any, problems: Any, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    workflow_id = _create(api, HOSTILE, ["<script>alert(2)</script>"])
    page.goto(console_server.console + "#/workflows")
    row = page.locator(f"tr[data-workflow-id='{workflow_id}']")
    expect(row.locator(".wf-name")).to_have_text(HOSTILE)
    expect(row.locator(".tag")).to_have_text("<script>alert(2)</script>")
    assert row.locator("img, script").count() == 0
    row.locator(".wf-name").click()
    expect(page.locator("#page-title")).to_have_text(HOSTILE)
    expect(page.locator(".designer-graph [data-step-id=only]")).to_be_visible()
    assert page.locator("main img").count() == 0
    assert problems.dialogs == []
