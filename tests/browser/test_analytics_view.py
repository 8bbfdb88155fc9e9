"""The analytics view in a real browser against a real ``wfe dev``: executions run
through the API (succeeded and failed) show in the view's totals and data tables, per
workflow and for the tenant; every chart has a caption and a data table; switching the
window and the workflow reloads through the REST API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = pytest.mark.slow

GOOD = {
    "name": "h3-analytics-good",
    "steps": [
        {
            "id": "double",
            "type": "transform",
            "config": {"set": {"n": "${input.n * 2}"}},
            "nextSteps": ["after"],
        },
        {"id": "after", "type": "transform", "config": {"set": {"m": 1}}},
    ],
}
BAD = {
    "name": "h3-analytics-<b>bad</b>",  # hostile name: must render as text
    "steps": [{"id": "divide", "type": "transform", "config": {"set": {"n": "${1/0}"}}}],
}
FIGURES = (
    "executions",
    "workflow-durations",
    "step-durations",
    "errors",
    "slowest",
    "triggers",
    "routes",
    "llm",
)


def _create(api: httpx.Client, definition: dict[str, Any]) -> str:
    response = api.post("/workflows", json=definition)
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["id"]
    return workflow_id


def _run(api: httpx.Client, workflow_id: str, times: int) -> None:
    ids = []
    for n in range(times):
        started = api.post(f"/workflows/{workflow_id}/execute", json={"input": {"n": n}})
        assert started.status_code == 202, started.text
        ids.append(started.json()["id"])
    deadline = time.monotonic() + 20
    for execution_id in ids:
        while api.get(f"/executions/{execution_id}").json()["status"] not in {
            "succeeded",
            "failed",
        }:
            assert time.monotonic() < deadline, "executions did not finish"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def flows(api: httpx.Client) -> dict[str, str]:
    good, bad = _create(api, GOOD), _create(api, BAD)
    _run(api, good, 3)
    _run(api, bad, 2)
    return {"good": good, "bad": bad}


def test_the_view_shows_the_figures_of_what_ran(
    console_server: Any,
    page: Any,
    api: httpx.Client,
    flows: dict[str, str],
    shot: Callable[[Any, str], Path],
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{console_server.console}#/analytics?workflowId={flows['good']}&window=24h")

    def kpi(key: str) -> Locator:
        found: Locator = page.locator(f"[data-kpi='{key}'] dd")
        return found

    expect(kpi("started")).to_have_text("3")
    expect(kpi("succeeded")).to_have_text("3")
    expect(kpi("failed")).to_have_text("0")
    expect(kpi("success-rate")).to_have_text("100%")
    for figure in FIGURES:  # each chart: a caption and a data table
        block = page.locator(f"[data-figure='{figure}']")
        expect(block.locator("figcaption h2")).not_to_be_empty()
        expect(block.locator("table.data")).to_have_count(1 if figure != "errors" else 2)
    steps = page.locator("table[data-table='steps'] tbody tr")
    expect(steps).to_have_count(2)
    expect(steps.filter(has_text="double").locator("[data-col='runs']")).to_have_text("3")
    expect(page.locator("[data-figure='executions'] canvas")).to_have_attribute("role", "img")
    page.locator("[data-figure='step-durations'] summary").click()  # open a table
    shot(page, "analytics-workflow")

    page.select_option("#an-workflow", flows["bad"])
    expect(kpi("failed")).to_have_text("2")
    expect(kpi("started")).to_have_text("2")
    expected = api.get("/analytics", params={"workflowId": flows["bad"]}).json()
    code = expected["errors"][0]["code"]
    errors = page.locator("table[data-table='errors'] tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.locator("[data-col='code']")).to_have_text(code)
    expect(errors.locator("[data-col='failures']")).to_have_text("2")
    expect(page.locator(".an-status")).to_contain_text("h3-analytics-<b>bad</b>")
    assert page.locator(".an-status b").count() == 0

    page.select_option("#an-workflow", "")  # the tenant: both workflows, and any others
    workflows = page.locator("table[data-table='workflows'] tbody tr")
    expect(
        workflows.filter(has_text="h3-analytics-good").locator("[data-col='succeeded']")
    ).to_have_text("3")
    expect(
        workflows.filter(has_text="h3-analytics-<b>bad</b>").locator("[data-col='failed']")
    ).to_have_text("2")
    tenant = api.get("/analytics").json()
    expect(kpi("started")).to_have_text(f"{tenant['totals']['started']:,}")
    expect(page.locator("table[data-table='triggers'] tbody tr").first).to_contain_text("manual")
    shot(page, "analytics")


def test_the_window_picker_reloads_and_reports_bad_windows(
    console_server: Any,
    page: Any,
    flows: dict[str, str],
    problems: Any,
    shot: Callable[[Any, str], Path],
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{console_server.console}#/analytics?workflowId={flows['good']}")
    expect(page.locator("[data-kpi='started'] dd")).to_have_text("3")
    expect(page.locator(".an-status")).to_contain_text("by day")
    page.select_option("#an-window", "24h")
    expect(page.locator(".an-status")).to_contain_text("by hour")
    page.select_option("#an-window", "custom")
    expect(page.locator("#an-from")).to_be_visible()
    problems.expected.append("400")  # the refused window below
    page.fill("#an-from", "2020-01-01T00:00")
    page.fill("#an-to", "2026-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".an-body [role='alert']")).to_contain_text("WINDOW_TOO_LARGE")
    shot(page, "analytics-window-error")
