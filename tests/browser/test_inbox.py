"""The approvals inbox in a real browser against a real ``wfe dev``: a waiting execution
is listed with its workflow, step, event, who may answer and a countdown; one that
starts waiting while the page is open appears live; approving (or rejecting) with a
payload sends the event, the execution moves on and its card goes away."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

APPROVAL = {
    "name": "h2-approval",
    "steps": [
        {
            "id": "wait_for_approval",
            "type": "wait_for_event",
            "config": {"event": "approval", "timeoutSeconds": 3600},
            "nextSteps": ["record"],
        },
        {
            "id": "record",
            "type": "transform",
            "config": {"set": {"by": "${prev.payload.by}", "approved": "${prev.payload.approved}"}},
        },
    ],
}


def _start(api: httpx.Client, workflow_id: str) -> str:
    answer = api.post(f"/workflows/{workflow_id}/execute", json={"input": {}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _until(
    api: httpx.Client, execution_id: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Read the execution until it is in one of ``statuses`` (a condition, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = api.get(f"/executions/{execution_id}").json()
        if execution["status"] in statuses:
            return execution
        assert time.monotonic() < deadline, f"{execution_id} stayed {execution['status']}"
        time.sleep(0.05)


def _fits(page: Any, selector: str) -> None:
    """Nothing in the view is wider than the view."""
    overflow = page.evaluate(
        """(selector) => {
      const root = document.querySelector(selector);
      const edge = root.getBoundingClientRect().right + 1;
      return [...root.querySelectorAll('*')]
        .filter((el) => el.getBoundingClientRect().right > edge)
        .map((el) => `${el.tagName}.${el.className}`).slice(0, 5);
    }""",
        selector,
    )
    assert overflow == [], overflow
    share = page.evaluate(
        "(s) => document.querySelector(s).getBoundingClientRect().width / window.innerWidth",
        selector,
    )
    assert share > 0.8, f"the view gets {share:.0%} of the screen's width (the nav's share?)"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_approve_and_reject_from_the_inbox(
    console_server: Any, page: Any, api: httpx.Client, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    created = api.post("/workflows", params={"onConflict": "newVersion"}, json=APPROVAL)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    first = _start(api, workflow_id)
    _until(api, first, {"waiting"})

    page.goto(f"{console_server.console}#/inbox")
    card = page.locator(f".inbox-card[data-execution-id='{first}']")
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-event", "approval")
    expect(card).to_have_attribute("data-step-id", "wait_for_approval")
    expect(card.locator(".inbox-title")).to_have_text("h2-approval · wait_for_approval")
    expect(card).to_contain_text("editor or owner role")
    expect(card.locator(".inbox-left")).to_contain_text("in 59 min")
    expect(card.locator(".inbox-waited")).not_to_have_text("—")

    # One that starts waiting while the page is open shows up without a reload.
    page.evaluate("window.__noReload = true")
    second = _start(api, workflow_id)
    other = page.locator(f".inbox-card[data-execution-id='{second}']")
    expect(other).to_be_visible()
    assert page.evaluate("window.__noReload") is True
    shot(page, "inbox")
    page.set_viewport_size({"width": 375, "height": 812})
    shot(page, "inbox-375")
    _fits(page, ".inbox-view")
    page.set_viewport_size({"width": 1280, "height": 860})

    # A payload that is not an object is refused in the page.
    card.locator("textarea").fill("[1, 2]")
    card.get_by_role("button", name="Approve").click()
    expect(card.locator(".row-error")).to_contain_text("must be a JSON object")
    assert api.get(f"/executions/{first}").json()["status"] == "waiting"

    card.locator("textarea").fill('{"by": "maria"}')
    card.get_by_role("button", name="Approve").click()
    expect(card).to_have_count(0)
    execution = _until(api, first, {"succeeded"})
    assert execution["variables"]["by"] == "maria"
    assert execution["variables"]["approved"] is True

    other.locator("textarea").fill('{"by": "omar"}')
    other.get_by_role("button", name="Reject").click()
    expect(other).to_have_count(0)
    execution = _until(api, second, {"succeeded"})
    assert execution["variables"] == {"by": "omar", "approved": False}
    expect(page.locator(".inbox-view .runs-status")).to_have_text(
        "Nothing is waiting for an event."
    )


TWO_STEPS = {
    "name": "h2-two-approvals",
    "steps": [
        {
            "id": "manager",
            "type": "wait_for_event",
            "config": {"event": "manager_ok", "timeoutSeconds": 3600},
            "nextSteps": ["finance"],
        },
        {
            "id": "finance",
            "type": "wait_for_event",
            "config": {"event": "finance_ok", "timeoutSeconds": 600},
            "nextSteps": ["done"],
        },
        {"id": "done", "type": "transform", "config": {"set": {"ok": True}}},
    ],
}


def test_an_execution_that_waits_again_comes_back_with_its_next_step(
    console_server: Any, page: Any, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    created = api.post("/workflows", params={"onConflict": "newVersion"}, json=TWO_STEPS)
    assert created.status_code == 201, created.text
    execution_id = _start(api, created.json()["id"])
    _until(api, execution_id, {"waiting"})

    page.goto(f"{console_server.console}#/inbox")
    cards = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
    expect(cards).to_have_count(1)
    expect(cards).to_have_attribute("data-event", "manager_ok")
    cards.get_by_role("button", name="Approve").click()
    expect(cards).to_have_attribute("data-event", "finance_ok")
    expect(cards).to_have_count(1)
    expect(cards.locator(".inbox-left")).to_contain_text("in 9 min")
    cards.get_by_role("button", name="Approve").click()
    expect(cards).to_have_count(0)
    assert _until(api, execution_id, {"succeeded"})["variables"] == {"ok": True}
