"""Queued executions in the console, in a real browser against a real ``wfe dev``: a
workflow with ``concurrency: [{limit: 1}]``, one execution holding the slot (parked on
``wait_for_event``), the next one queued. The list and the detail show ``queued`` in
its own colour with the reason and the place; the workflow's page shows the per-key
usage; when the holder ends, the detail turns to running over the live stream."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

LIMITED = {
    "name": "one-at-a-time",
    "concurrency": [{"limit": 1}],
    "steps": [
        {
            "id": "wait",
            "type": "wait_for_event",
            "config": {"event": "go", "timeoutSeconds": 3600},
            "nextSteps": ["record"],
        },
        {"id": "record", "type": "transform", "config": {"set": {"done": True}}},
    ],
}
REASON = "waiting for concurrency slot"


def _until(api: httpx.Client, execution_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while api.get(f"/executions/{execution_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"{execution_id} never became {status}"
        time.sleep(0.05)


def _start(api: httpx.Client, workflow_id: str) -> str:
    answer = api.post(f"/workflows/{workflow_id}/execute", json={"input": {}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_queued_executions_show_their_reason_place_and_usage(
    console_server: Any,
    page: Any,
    api: httpx.Client,
    shot: Callable[[Any, str], Path],
) -> None:
    from playwright.sync_api import expect

    made = api.post("/workflows", params={"onConflict": "newVersion"}, json=LIMITED)
    assert made.status_code == 201, made.text
    workflow_id = made.json()["id"]
    holder = _start(api, workflow_id)
    _until(api, holder, "waiting")
    queued = _start(api, workflow_id)
    _until(api, queued, "queued")

    # The list, filtered on the new status: the reason and the place under the badge.
    page.goto(f"{console_server.console}#/executions?workflowId={workflow_id}&status=queued")
    row = page.locator(f"tr[data-execution-id='{queued}']")
    expect(page.locator(".runs-table tbody tr")).to_have_count(1)
    expect(row).to_have_attribute("data-status", "queued")
    expect(row.locator(".badge")).to_have_text("queued")
    expect(row.locator(".row-queue")).to_have_text(f"{REASON} · #1 in queue")
    expect(page.locator("#f-status")).to_have_value("queued")

    # Its own colour: not the waiting one (the holder's row shows that badge).
    page.locator("#f-status").select_option("")
    waiting = page.locator(f"tr[data-execution-id='{holder}'] .badge")
    expect(waiting).to_have_text("waiting")
    colour = "(e) => getComputedStyle(e).backgroundColor"
    assert row.locator(".badge").evaluate(colour) != waiting.evaluate(colour)
    expect(page.locator(f"tr[data-execution-id='{holder}'] .row-queue")).to_have_count(0)

    # The detail: the badge and a note with the reason and the place.
    page.goto(f"{console_server.console}#/executions/{queued}")
    expect(page.locator(".run-detail[data-rendered='true']")).to_have_count(1)
    expect(page.locator(".run-status")).to_have_attribute("data-status", "queued")
    note = page.locator(".run-queue")
    expect(note).to_be_visible()
    expect(note).to_have_text(f"{REASON} · #1 in queue")
    expect(page.locator(".run-live")).to_have_text("● live")
    shot(page, "queued")

    # The workflow's page: the key's slot in use and its queue.
    page.goto(f"{console_server.console}#/workflows/{workflow_id}")
    usage = page.locator(".concurrency-panel")
    expect(usage).to_contain_text("at most 1 running for the workflow")
    key = usage.locator("tr[data-key='']")
    expect(key).to_have_attribute("data-queued", "1")
    expect(key.locator("td").nth(1)).to_have_text("1 / 1")
    expect(key.locator("td").nth(2)).to_have_text("1")
    shot(page, "queued-usage")

    # The holder ends: the queued one starts, and its open detail follows live.
    page.goto(f"{console_server.console}#/executions/{queued}")
    expect(note).to_be_visible()
    sent = api.post(f"/executions/{holder}/events", json={"name": "go"})
    assert sent.status_code == 202, sent.text
    started = re.compile("^(running|waiting)$")  # execution.dequeued says running
    expect(page.locator(".run-status")).to_have_attribute("data-status", started)
    expect(note).to_be_hidden()
    api.post(f"/executions/{queued}/cancel", json={})  # leave nothing running behind
