"""The executions list and the live execution detail in a real browser against a real
``wfe dev``: filters bound to the hash, cursor paging, bulk cancel with per-row results,
a failed execution redriven from the list; the detail's graph turning green over the
WebSocket without a reload or a single poll, cancel / pause / resume / send-event from
the page; a 500-step execution and 100 events/s as a printed benchmark."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

HOLD = {
    "name": "h2-hold",
    "steps": [
        {"id": "prepare", "type": "transform", "config": {"set": {"n": 1}}, "nextSteps": ["wait"]},
        {
            "id": "wait",
            "type": "wait_for_event",
            "config": {"event": "go", "timeoutSeconds": 3600},
            "nextSteps": ["record"],
        },
        {"id": "record", "type": "transform", "config": {"set": {"by": "${prev.payload.by}"}}},
    ],
}
FAIL = {
    "name": "h2-fail",
    "steps": [
        {
            "id": "divide",
            "type": "transform",
            "config": {"set": {"n": "${1/0}"}},
            "nextSteps": ["after"],
        },
        {"id": "after", "type": "transform", "config": {"set": {"m": 2}}},
    ],
}
MAP = {
    "name": "h2-map-500",
    "steps": [
        {
            "id": "each",
            "type": "map",
            "config": {
                "items": "input.items",
                "start": "square",
                "concurrency": 100,
                "maxItems": 1000,
            },
            "nextSteps": ["done"],
        },
        {"id": "square", "type": "transform", "config": {"output": "${item * item}"}},
        {"id": "done", "type": "transform", "config": {"set": {"finished": True}}},
    ],
}


def _workflow(api: httpx.Client, body: dict[str, Any]) -> str:
    answer = api.post("/workflows", params={"onConflict": "newVersion"}, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _start(api: httpx.Client, workflow_id: str, payload: dict[str, Any] | None = None) -> str:
    answer = api.post(f"/workflows/{workflow_id}/execute", json={"input": payload or {}})
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


@pytest.fixture(scope="module")
def flows(api: httpx.Client) -> dict[str, str]:
    return {"hold": _workflow(api, HOLD), "fail": _workflow(api, FAIL), "map": _workflow(api, MAP)}


def test_list_filters_pages_and_bulk_cancels(
    console_server: Any,
    page: Any,
    api: httpx.Client,
    flows: dict[str, str],
    shot: Callable[[Any, str], Path],
    problems: Any,
) -> None:
    from playwright.sync_api import expect

    held = [_start(api, flows["hold"]) for _ in range(3)]
    for execution_id in held:
        _until(api, execution_id, {"waiting"})
    failed = _start(api, flows["fail"])
    _until(api, failed, {"failed"})

    page.goto(
        f"{console_server.console}#/executions?workflowId={flows['hold']}&status=waiting&limit=2"
    )
    rows = page.locator(".runs-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#f-status")).to_have_value("waiting")
    expect(page.locator("#f-workflow")).to_have_value(flows["hold"])
    newest = [rows.nth(i).get_attribute("data-execution-id") for i in range(2)]
    assert newest == [held[2], held[1]]
    page.locator("#page-next").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-execution-id", held[0])
    assert "cursor=" in page.evaluate("location.hash")
    expect(page.locator("#page-next")).to_be_disabled()
    page.locator("#page-prev").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-execution-id", held[2])

    # A status filter changed in the form lands in the hash; the failed one is not listed.
    page.locator("#f-limit").select_option("10")
    expect(rows).to_have_count(3)
    assert "status=waiting" in page.evaluate("location.hash")
    assert "limit=10" in page.evaluate("location.hash")
    page.locator("#f-workflow").select_option("")
    page.locator("#f-status").select_option("failed")
    expect(rows.locator(f"[href='#/executions/{failed}']")).to_have_count(1)
    expect(page.locator(".runs-table tbody tr[data-status=waiting]")).to_have_count(0)
    page.locator("#f-workflow").select_option(flows["hold"])
    page.locator("#f-status").select_option("waiting")
    expect(rows).to_have_count(3)
    shot(page, "executions-list")

    # Trigger and time range (applied to the pages read): all of these are manual and
    # started before now + 1 day.
    page.locator("#f-trigger").select_option("schedule")
    expect(page.locator(".runs-view .runs-status")).to_have_text(
        "No executions match these filters."
    )
    assert "trigger=schedule" in page.evaluate("location.hash")
    page.locator("#f-trigger").select_option("manual")
    expect(rows).to_have_count(3)
    page.locator("#f-since").fill("2999-01-01T00:00")
    expect(rows).to_have_count(0)
    page.locator("#f-since").fill("")
    page.locator("#f-until").fill("2999-01-01T00:00")
    expect(rows).to_have_count(3)
    assert "until=" in page.evaluate("location.hash")

    # One of them is cancelled behind the page's back: its row reports the refusal,
    # the others are cancelled.
    assert api.post(f"/executions/{held[0]}/cancel", json={}).status_code == 200
    problems.expected.append("409")
    page.locator("#select-all").check()
    expect(page.locator("#bulk-cancel")).to_be_enabled()
    page.locator("#bulk-cancel").click()
    for execution_id in held[1:]:
        row = page.locator(f"tr[data-execution-id='{execution_id}']")
        expect(row.locator(".row-ok")).to_have_text("cancelled")
        expect(row).to_have_attribute("data-status", "cancelled")
    refused = page.locator(f"tr[data-execution-id='{held[0]}'] .row-error")
    expect(refused).to_contain_text("cancel failed: INVALID_STATE")
    # ... and the row then shows what that execution is now.
    expect(page.locator(f"tr[data-execution-id='{held[0]}']")).to_have_attribute(
        "data-status", "cancelled"
    )
    expect(refused).to_contain_text("cancel failed: INVALID_STATE")
    for execution_id in held:
        assert api.get(f"/executions/{execution_id}").json()["status"] == "cancelled"
    shot(page, "executions-bulk-cancel")


def test_failed_execution_redriven_from_the_list(
    console_server: Any, page: Any, api: httpx.Client, flows: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    failed = _start(api, flows["fail"])
    _until(api, failed, {"failed"})
    page.goto(f"{console_server.console}#/executions?workflowId={flows['fail']}&status=failed")
    row = page.locator(f"tr[data-execution-id='{failed}']")
    expect(row).to_have_attribute("data-status", "failed")
    row.locator(".row-redrive").click()
    expect(row.locator(".row-ok")).to_have_text("redriven")
    # The redrive ran the failed step again (it fails again: 1/0), under generation 1.
    execution = _until(api, failed, {"failed"})
    assert execution["redriveCount"] == 1
    assert {s["generation"] for s in execution["steps"]} == {0, 1}


def _fits(page: Any, selector: str) -> None:
    """Nothing in the view is wider than the view (it scrolls inside its own boxes)."""
    overflow = page.evaluate(
        """(selector) => {
      const root = document.querySelector(selector);
      const edge = root.getBoundingClientRect().right + 1;
      return [...root.querySelectorAll('*')]
        .filter((el) => !el.closest('.run-graph, .tl, .run-log, .runs-table-wrap'))
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


def _count_polls(page: Any, execution_id: str) -> list[str]:
    seen: list[str] = []

    def on_request(request: Any) -> None:
        path = request.url.split("?", 1)[0]
        if path.endswith(f"/api/v1/executions/{execution_id}") or path.endswith(
            f"/api/v1/executions/{execution_id}/events"
        ):
            seen.append(request.url)

    page.on("request", on_request)
    return seen


def test_detail_turns_green_live_without_polling(
    console_server: Any,
    page: Any,
    api: httpx.Client,
    flows: dict[str, str],
    shot: Callable[[Any, str], Path],
) -> None:
    from playwright.sync_api import expect

    execution_id = _start(api, flows["hold"])
    _until(api, execution_id, {"waiting"})
    polls = _count_polls(page, execution_id)
    page.goto(f"{console_server.console}#/executions/{execution_id}")
    graph = page.locator(".run-graph")
    expect(graph.locator("[data-step-id=wait][data-state=waiting]")).to_have_count(1)
    expect(graph.locator("[data-step-id=prepare][data-state=succeeded]")).to_have_count(1)
    expect(graph.locator("[data-step-id=record][data-state=pending]")).to_have_count(1)
    expect(page.locator(".run-live")).to_have_attribute("data-live", "open")
    expect(page.locator(".run-send")).to_be_visible()
    expect(page.locator("#send-name")).to_have_value("go")
    shot(page, "execution-detail-waiting")
    page.set_viewport_size({"width": 375, "height": 812})
    shot(page, "execution-detail-waiting-375")
    _fits(page, ".run-detail")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.evaluate("window.__noReload = true")
    loads = len(polls)
    assert loads == 1, polls

    answer = api.post(
        f"/executions/{execution_id}/events", json={"name": "go", "payload": {"by": "ana"}}
    )
    assert answer.status_code == 202, answer.text
    expect(graph.locator("[data-step-id=wait][data-state=succeeded]")).to_have_count(1)
    expect(graph.locator("[data-step-id=record][data-state=succeeded]")).to_have_count(1)
    expect(page.locator(".run-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".run-log li[data-seq]").last).to_contain_text("execution.succeeded")
    expect(page.locator(".run-send")).to_be_hidden()
    assert page.evaluate("window.__noReload") is True
    assert len(polls) == loads, polls  # the state changed over the socket only
    expect(page.locator(".tl-row[data-step-id=record]")).to_have_attribute(
        "data-state", "succeeded"
    )

    # The step panel shows the wait's output (read once, on demand, from /steps).
    graph.locator("[data-step-id=wait]").first.click()
    expect(page.locator(".run-panel")).to_contain_text("ana")
    shot(page, "execution-detail-succeeded")


def test_detail_cancel_pause_resume_and_send_event(
    console_server: Any, page: Any, api: httpx.Client, flows: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    first = _start(api, flows["hold"])
    second = _start(api, flows["hold"])
    _until(api, first, {"waiting"})
    _until(api, second, {"waiting"})

    page.goto(f"{console_server.console}#/executions/{first}")
    status = page.locator(".run-status")
    expect(status).to_have_attribute("data-status", "waiting")
    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_attribute("data-status", "paused")
    assert api.get(f"/executions/{first}").json()["status"] == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(status).to_have_attribute("data-status", "waiting")
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_have_attribute("data-status", "cancelled")
    expect(page.locator(".run-graph [data-step-id=wait]").first).to_have_attribute(
        "data-state", "cancelled"
    )
    assert api.get(f"/executions/{first}").json()["status"] == "cancelled"

    # The send-event form answers a waiting step from the page.
    page.goto(f"{console_server.console}#/executions/{second}")
    expect(page.locator("#send-name")).to_have_value("go")
    page.locator("#send-payload").fill('{"by": "from-the-form"}')
    page.locator("#send-event").click()
    expect(status).to_have_attribute("data-status", "succeeded")
    execution = api.get(f"/executions/{second}").json()
    assert execution["variables"]["by"] == "from-the-form"

    # Bad JSON is refused in the page, nothing is sent.
    third = _start(api, flows["hold"])
    _until(api, third, {"waiting"})
    page.goto(f"{console_server.console}#/executions/{third}")
    page.locator("#send-payload").fill("{not json")
    page.locator("#send-event").click()
    expect(page.locator(".run-send .row-error")).to_contain_text("not valid JSON")
    assert api.get(f"/executions/{third}").json()["status"] == "waiting"


def test_benchmark_500_steps_and_100_events_per_second(
    console_server: Any,
    page: Any,
    api: httpx.Client,
    flows: dict[str, str],
    shot: Callable[[Any, str], Path],
) -> None:
    """Printed, not asserted on wall time: first full render of a 500-item map, then
    100 events/s for 5 s through the view's event handler, with frame times."""
    from playwright.sync_api import expect

    execution_id = _start(api, flows["map"], {"items": list(range(500))})
    execution = _until(api, execution_id, {"succeeded", "failed"}, timeout=180)
    assert execution["status"] == "succeeded", execution.get("error")
    runs = len(execution["steps"])
    assert runs >= 502

    began = time.monotonic()
    page.goto(f"{console_server.console}#/executions/{execution_id}")
    expect(page.locator(".run-detail[data-rendered=true]")).to_have_count(1)
    expect(page.locator(".tl-row")).to_have_count(runs)
    expect(page.locator(".run-graph [data-step-id=square][data-state=succeeded]")).to_have_count(1)
    wall = (time.monotonic() - began) * 1000
    # The stream replays the stored events, then ends (the execution is over).
    expect(page.locator(".run-live")).to_have_attribute("data-live", "ended", timeout=60_000)
    replayed = (time.monotonic() - began) * 1000
    stats = page.evaluate("window.__wfeExecutionView.stats()")
    print(
        json.dumps(
            {
                "bench": "execution-detail-first-render",
                "runs": runs,
                "viewFirstRenderMs": round(stats["firstRenderMs"], 1),
                "navigationToRenderedMs": round(wall, 1),
                "navigationToStreamReplayedMs": round(replayed, 1),
            }
        )
    )
    # Long logs paint only the lines near the viewport: a viewport as tall as the page.
    page.set_viewport_size({"width": 1280, "height": 1600})
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    shot(page, "execution-detail-500")
    page.set_viewport_size({"width": 1280, "height": 860})

    # 100 events/s for 5 s: new map items running then succeeding, fed as the socket would.
    result = page.evaluate(
        """async () => {
      const view = window.__wfeExecutionView;
      const frames = [];
      let last = performance.now();
      let running = true;
      const loop = (t) => {
        frames.push(t - last); last = t; if (running) requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
      const before = view.stats();
      let seq = 1000000;
      const start = performance.now();
      let sent = 0;
      await new Promise((done) => {
        const timer = setInterval(() => {
          const due = Math.floor((performance.now() - start) / 10);
          const batch = [];
          while (sent < due && sent < 500) {
            const i = sent++;
            const runId = `bench-${i >> 1}`;
            batch.push({executionId: 'bench', seq: ++seq,
              type: i % 2 ? 'step.succeeded' : 'step.started',
              stepId: 'square', runId, status: i % 2 ? 'succeeded' : 'running',
              data: {attempt: 1, durationMs: 3}, at: new Date().toISOString()});
          }
          if (batch.length) view.ingest(batch);
          if (sent >= 500) { clearInterval(timer); done(); }
        }, 10);
      });
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      running = false;
      const after = view.stats();
      const sorted = frames.slice(1).sort((a, b) => a - b);
      const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
      return {events: after.events - before.events, seconds: (performance.now() - start) / 1000,
        frames: sorted.length, frameP50Ms: q(0.5), frameP95Ms: q(0.95),
        frameMaxMs: sorted[sorted.length - 1],
        flushP95Ms: after.p95FlushMs, flushMaxMs: after.maxFlushMs, runs: after.runs};
    }"""
    )
    print(
        json.dumps(
            {
                "bench": "execution-detail-100-events-per-second",
                **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()},
            }
        )
    )
    assert result["events"] == 500
    assert result["runs"] == runs + 250
    expect(page.locator(".tl-row")).to_have_count(runs + 250)


DECISION = {
    "name": "h2-decision",
    "variables": {"tier": "gold", "subject": "printer is on fire"},
    "steps": [
        {
            "id": "route",
            "type": "decision",
            "config": {
                "nodes": [
                    {
                        "id": "is_vip",
                        "type": "condition",
                        "when": "vars.tier == 'gold'",
                        "then": "sla",
                        "else": "low",
                    },
                    {
                        "id": "sla",
                        "type": "lookup",
                        "key": "vars.tier",
                        "table": {"gold": 4},
                        "default": 24,
                        "as": "slaHours",
                        "next": "classify",
                    },
                    {
                        "id": "classify",
                        "type": "ai",
                        "prompt": "Classify ${vars.subject}",
                        "branches": {
                            "hardware": {"next": "high", "description": "devices"},
                            "other": {"next": "low", "description": "anything else"},
                        },
                        "fallback": "hardware",
                    },
                ]
            },
            "nextSteps": ["high", "low"],
        },
        {"id": "high", "type": "transform", "config": {"set": {"lane": "high"}}},
        {"id": "low", "type": "transform", "config": {"set": {"lane": "low"}}},
    ],
}


def test_decision_step_shows_its_path_and_ai_route(
    console_server: Any, page: Any, api: httpx.Client, shot: Callable[[Any, str], Path]
) -> None:
    """No model is configured in wfe dev: the AI node falls back, and says why."""
    from playwright.sync_api import expect

    execution_id = _start(api, _workflow(api, DECISION))
    _until(api, execution_id, {"succeeded"})
    page.goto(f"{console_server.console}#/executions/{execution_id}")
    graph = page.locator(".run-graph")
    expect(graph.locator("[data-step-id=high][data-state=succeeded]")).to_have_count(1)
    expect(graph.locator("[data-step-id=low][data-state=pending]")).to_have_count(1)
    graph.locator("[data-step-id=route]").first.click()
    box = page.locator(".run-panel .run-decision-box")
    expect(box.locator("h4")).to_have_text("Decision: high")
    path = box.locator("li")
    expect(path).to_have_count(4)
    expect(path.nth(0)).to_contain_text("condition → true")
    expect(path.nth(1)).to_contain_text('lookup "gold" → 4')
    expect(path.nth(2)).to_contain_text("ai route → hardware · decided by fallback")
    expect(path.nth(2).locator(".row-error")).to_contain_text("NO_MODEL")
    shot(page, "execution-detail-decision")


SALT = "runs-views-salt"
OWNER_KEY = "runs-owner-key-0123456789"
VIEWER_KEY = "runs-viewer-key-0123456789"


def test_a_viewer_watches_live_but_gets_no_write_controls(
    start_console: Callable[..., Any], page: Any, problems: Any
) -> None:
    """With API keys: the stream opens with a stream token (a browser sends no headers
    on a WebSocket); a viewer sees the execution live but no action, bulk or answer
    control (the API would refuse them anyway)."""
    from playwright.sync_api import expect

    from shared.api.auth import hash_api_key

    keys = [
        f"{hash_api_key(OWNER_KEY, SALT)}:olga:default:owner",
        f"{hash_api_key(VIEWER_KEY, SALT)}:vera:default:viewer",
    ]
    server = start_console({"WFE_API_KEYS": ",".join(keys), "WFE_API_KEY_SALT": SALT})
    with httpx.Client(
        base_url=f"{server.base}/api/v1", headers={"X-API-Key": OWNER_KEY}, timeout=30
    ) as owner:
        execution_id = _start(owner, _workflow(owner, HOLD))
        _until(owner, execution_id, {"waiting"})

        problems.expected.append("401")  # GET /session before signing in
        page.goto(f"{server.console}#/executions")
        page.get_by_label("API key").fill(VIEWER_KEY)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".role")).to_have_text("viewer")
        page.goto(f"{server.console}#/executions")
        expect(page.locator(f"tr[data-execution-id='{execution_id}']")).to_have_count(1)
        expect(page.locator("#bulk-cancel")).to_have_count(0)
        expect(page.locator("#bulk-redrive")).to_have_count(0)

        page.goto(f"{server.console}#/executions/{execution_id}")
        graph = page.locator(".run-graph")
        expect(graph.locator("[data-step-id=wait][data-state=waiting]")).to_have_count(1)
        expect(page.locator(".run-live")).to_have_attribute("data-live", "open")
        expect(page.locator(".run-actions button")).to_have_count(0)
        expect(page.locator(".run-send")).to_be_hidden()
        sent = owner.post(
            f"/executions/{execution_id}/events", json={"name": "go", "payload": {"by": "olga"}}
        )
        assert sent.status_code == 202, sent.text
        expect(graph.locator("[data-step-id=record][data-state=succeeded]")).to_have_count(1)

        waiting = _start(owner, _workflow(owner, HOLD))
        _until(owner, waiting, {"waiting"})
        page.goto(f"{server.console}#/inbox")
        card = page.locator(f".inbox-card[data-execution-id='{waiting}']")
        expect(card).to_contain_text("Your role cannot answer.")
        expect(card.get_by_role("button", name="Approve")).to_have_count(0)
