"""The approvals inbox shows the two other ways a step waits for a person (issue 16), in
a real browser against a real ``wfe dev`` replaying model recordings offline:

- an ``agent`` step's tool call waiting for approval (output ``awaitingApproval``):
  the card shows the tool and its proposed args; approving with edited args runs the
  tool with them, rejecting (with a reason) ends the step as ``onReject`` says;
- an ``llm`` step's guardrail escalation (output ``awaitingDecision``): the card shows
  the answer and the failed verdicts; accepting completes the step with the answer;
  the same for an ``agent`` step's answer (after its tool call);
- a hostile string in the proposed args renders as text, and a refusal of the API
  (403 ``EVENT_SENDER_NOT_ALLOWED``) is shown on the card, which stays;
- a viewer sees the cards without any action;
- live, without reloading the page: an agent that asks again (a second call of the same
  step run) gets a new card in place of the first, and a call proposed while the
  workflow's live stream connects gets its card once the stream is open.

The server replays recordings from a folder of this module (``WFE_AI_RECORDINGS_DIR``):
the shipped ``examples/agent_approval.recording.json`` as it is, the shipped
``examples/guarded_answer.recording.json`` under another workflow name (whose
guardrails escalate at once instead of retrying), and one with a hostile argument.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import ROOT

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples"
HOSTILE = "<img src=x onerror=\"window.__xss=1;alert('xss')\"><script>window.__xss=2</script>"

AGENT = {
    "name": "agent-approval",  # the shipped recording's workflow
    "steps": [
        {
            "id": "remember",
            "type": "agent",
            "config": {
                "prompt": "Record the customer tier.",
                "allowSideEffects": True,
                "onReject": "fail",
                "tools": ["read_variables", {"name": "set_variable", "requiresApproval": True}],
            },
        }
    ],
}

SHORT_TITLE = {
    "cel": "size(output.title) <= 60",
    "name": "short_title",
    "message": "the title must be at most 60 characters",
}

GUARDED = {
    "name": "inbox-guarded-answer",
    "variables": {"story": "The workflow engine now checks model answers."},
    "steps": [
        {
            "id": "write_headline",
            "type": "llm",
            "outputVar": "headline",
            "config": {
                "prompt": "Write a headline for this story: ${vars.story}",
                "outputSchema": {
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"],
                },
                "guardrails": {
                    "validators": [
                        {"schema": {"type": "object", "required": ["title"]}, "name": "has_title"},
                        SHORT_TITLE,
                    ],
                    "onFail": "escalate",
                },
            },
        }
    ],
}

AGENT_ESCALATED = {
    "name": "inbox-agent-escalated",  # replays examples/agent_guarded.recording.json
    "variables": {"story": "The workflow engine now checks what its agents answer."},
    "steps": [
        {
            "id": "headline",
            "type": "agent",
            "outputVar": "headline",
            "config": {
                "prompt": "Read the variable story and write a headline for it.",
                "tools": ["read_variables"],
                "outputSchema": {
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"],
                },
                "guardrails": {
                    "validators": [SHORT_TITLE],
                    "onFail": "escalate",
                },
            },
        }
    ],
}

HOSTILE_AGENT = {
    "name": "inbox-hostile-agent",
    "steps": [
        {
            "id": "note",
            "type": "agent",
            "config": {
                "prompt": "Take a note.",
                "allowSideEffects": True,
                "answeredBy": ["maria@example.com"],  # not local-dev: the API refuses us
                "tools": [{"name": "set_variable", "requiresApproval": True}],
            },
        }
    ],
}


TWO_CALLS = {
    "name": "inbox-two-calls",
    "steps": [
        {
            "id": "tiers",
            "type": "agent",
            "config": {
                "prompt": "Record two tiers.",
                "allowSideEffects": True,
                "tools": [{"name": "set_variable", "requiresApproval": True}],
            },
        }
    ],
}


def _call(call_id: str, name: str, value: str) -> dict[str, Any]:
    return {
        "content": "",
        "toolCalls": [
            {"id": call_id, "name": "set_variable", "args": {"name": name, "value": value}}
        ],
        "usage": {"inputTokens": 9, "outputTokens": 9},
    }


def _recordings(folder: Path) -> Path:
    """The recordings folder the server replays: shipped ones, and a hostile one."""
    folder.mkdir(parents=True, exist_ok=True)
    shipped = (EXAMPLES / "agent_approval.recording.json").read_text()
    (folder / "agent_approval.recording.json").write_text(shipped)
    guarded = json.loads((EXAMPLES / "guarded_answer.recording.json").read_text())
    guarded["workflow"] = GUARDED["name"]
    (folder / "inbox_guarded.recording.json").write_text(json.dumps(guarded))
    agent = json.loads((EXAMPLES / "agent_guarded.recording.json").read_text())
    agent["workflow"] = AGENT_ESCALATED["name"]
    (folder / "inbox_agent_escalated.recording.json").write_text(json.dumps(agent))
    call = {"id": "call_x", "name": "set_variable", "args": {"name": "note", "value": HOSTILE}}
    hostile = {
        "workflow": HOSTILE_AGENT["name"],
        "steps": {
            "note": {
                "turns": [
                    {
                        "content": "",
                        "toolCalls": [call],
                        "usage": {"inputTokens": 9, "outputTokens": 9},
                    },
                    {"content": "ok", "usage": {"inputTokens": 9, "outputTokens": 1}},
                ]
            }
        },
    }
    (folder / "inbox_hostile.recording.json").write_text(json.dumps(hostile))
    done = {"content": "both recorded", "usage": {"inputTokens": 9, "outputTokens": 2}}
    turns = [_call("call_a", "first", "a"), _call("call_b", "second", "b"), done]
    two = {"workflow": TWO_CALLS["name"], "steps": {"tiers": {"turns": turns}}}
    (folder / "inbox_two_calls.recording.json").write_text(json.dumps(two))
    return folder


@pytest.fixture(scope="module")
def ai_server(start_console: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = _recordings(tmp_path_factory.mktemp("recordings"))
    return start_console({"WFE_AI_RECORDINGS_DIR": str(folder), "WFE_AI_PROVIDER": "none"})


@pytest.fixture(scope="module")
def ai_api(ai_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{ai_server.base}/api/v1", timeout=30) as client:
        yield client


def _workflow(api: httpx.Client, definition: dict[str, Any]) -> str:
    created = api.post("/workflows", params={"onConflict": "newVersion"}, json=definition)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _start(api: httpx.Client, workflow_id: str) -> str:
    answer = api.post(f"/workflows/{workflow_id}/execute", json={"input": {}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _until(
    api: httpx.Client, execution_id: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = api.get(f"/executions/{execution_id}").json()
        if execution["status"] in statuses:
            return execution
        assert time.monotonic() < deadline, f"{execution_id} stayed {execution['status']}"
        time.sleep(0.05)


def _waiting_output(api: httpx.Client, execution_id: str, step_id: str) -> dict[str, Any]:
    """The waiting run's output, once the step shows what it waits for."""
    deadline = time.monotonic() + 60
    while True:
        _until(api, execution_id, {"waiting"})
        runs = api.get(f"/executions/{execution_id}/steps").json()["items"]
        mine = [r for r in runs if r["stepId"] == step_id and r["status"] == "waiting"]
        if mine and isinstance(mine[-1].get("output"), dict):
            return dict(mine[-1]["output"])
        assert time.monotonic() < deadline, runs
        time.sleep(0.05)


def _step_output(api: httpx.Client, execution_id: str, step_id: str) -> dict[str, Any]:
    runs = api.get(f"/executions/{execution_id}/steps").json()["items"]
    return dict([r for r in runs if r["stepId"] == step_id][-1]["output"] or {})


def _fits(page: Any, selector: str) -> None:
    """Nothing in the view is wider than the view (long answers and args wrap)."""
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
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _escalation_card(page: Any, execution_id: str, event: str, answer: str) -> Any:
    """The inbox card of a guardrail escalation: its event, the answer, and one failed
    check (short_title) with its message."""
    from playwright.sync_api import expect

    card = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
    expect(card).to_have_attribute("data-kind", "escalation")
    expect(card).to_have_attribute("data-event", event)
    expect(card.locator(".inbox-answer-text")).to_contain_text(answer)
    verdicts = card.locator(".inbox-verdict")
    expect(verdicts).to_have_count(1)
    expect(verdicts).to_contain_text("short_title")
    expect(verdicts).to_contain_text("the title must be at most 60 characters")
    return card


def test_a_tool_call_approved_with_edited_args_and_one_rejected(
    ai_server: Any, ai_api: httpx.Client, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    workflow_id = _workflow(ai_api, AGENT)
    first = _start(ai_api, workflow_id)
    second = _start(ai_api, workflow_id)
    proposed = _waiting_output(ai_api, first, "remember")
    assert proposed["status"] == "awaitingApproval"
    _waiting_output(ai_api, second, "remember")

    page.goto(f"{ai_server.console}#/inbox")
    card = page.locator(f".inbox-card[data-execution-id='{first}']")
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-kind", "approval")
    expect(card).to_have_attribute("data-event", proposed["approval"]["event"])
    expect(card.locator(".inbox-title")).to_contain_text("agent-approval · remember")
    expect(card.locator(".inbox-tool")).to_have_text("set_variable")
    shown = json.loads(card.locator(".inbox-args").inner_text())
    assert shown == {"name": "tier", "value": "silver"}  # the recording's proposed call
    expect(card).to_contain_text("editor or owner role")
    expect(card).to_contain_text("TOOL_CALL_REJECTED")  # what a rejection does (onReject)
    expect(card.locator(".inbox-left")).not_to_have_text("never")  # approvalTimeoutSeconds
    shot(page, "inbox-ai-approval")

    # Edited args are checked in the page: not JSON, not an object.
    card.get_by_role("button", name="Approve with edited args…").click()
    editor = card.get_by_label("Arguments for set_variable (JSON object)")
    expect(editor).to_be_visible()
    editor.fill('{"name": "tier",')
    card.get_by_role("button", name="Approve with these args").click()
    expect(card.locator(".row-error")).to_contain_text("The arguments is not valid JSON")
    editor.fill('["tier", "gold"]')
    card.get_by_role("button", name="Approve with these args").click()
    expect(card.locator(".row-error")).to_have_text("The arguments must be a JSON object.")
    assert ai_api.get(f"/executions/{first}").json()["status"] == "waiting"

    editor.fill('{"name": "tier", "value": "gold"}')
    expect(card.locator(".row-error")).to_have_text("")  # the last check's word is stale now
    shot(page, "inbox-ai-approval-edit")
    card.get_by_role("button", name="Approve with these args").click()
    expect(card).to_have_count(0)
    done = _until(ai_api, first, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["variables"]["tier"] == "gold"  # the edited value, not the proposed one
    tool = [e for e in _step_output(ai_api, first, "remember")["entries"] if e["kind"] == "tool"]
    assert tool[0]["input"] == {"name": "tier", "value": "gold"}
    assert tool[0]["approval"]["by"] == "local-dev"

    other = page.locator(f".inbox-card[data-execution-id='{second}']")
    other.get_by_label("Reason (sent with a rejection)").fill("not today")
    other.get_by_role("button", name="Reject").click()
    expect(other).to_have_count(0)
    rejected = _until(ai_api, second, {"succeeded", "failed"})
    assert rejected["status"] == "failed", rejected  # onReject: fail
    assert rejected["errorInfo"]["code"] == "TOOL_CALL_REJECTED"
    assert "not today" in rejected["errorInfo"]["message"]
    assert "tier" not in (rejected.get("variables") or {})


def test_a_guardrail_escalation_is_accepted_or_rejected_from_the_inbox(
    ai_server: Any, ai_api: httpx.Client, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    workflow_id = _workflow(ai_api, GUARDED)
    first = _start(ai_api, workflow_id)
    second = _start(ai_api, workflow_id)
    escalated = _waiting_output(ai_api, first, "write_headline")
    assert escalated["status"] == "awaitingDecision"
    assert escalated["escalation"]["event"] == "guardrail.write_headline"
    _waiting_output(ai_api, second, "write_headline")
    # A wait_for_event card beside them, as today.
    hold = _workflow(
        ai_api,
        {
            "name": "inbox-ai-hold",
            "steps": [
                {
                    "id": "hold",
                    "type": "wait_for_event",
                    "config": {"event": "go", "timeoutSeconds": 3600},
                }
            ],
        },
    )
    held = _start(ai_api, hold)
    _until(ai_api, held, {"waiting"})

    page.goto(f"{ai_server.console}#/inbox")
    card = _escalation_card(  # has_title passed: only the failed one is listed
        page,
        first,
        "guardrail.write_headline",
        "checks every model answer with schemas, CEL predicates",
    )
    expect(card).to_contain_text("1 of 2 checks passed")
    event_card = page.locator(f".inbox-card[data-execution-id='{held}']")
    expect(event_card).to_have_attribute("data-event", "go")
    expect(event_card.locator("textarea")).to_be_visible()
    shot(page, "inbox-ai")
    page.set_viewport_size({"width": 375, "height": 812})
    shot(page, "inbox-ai-375")
    _fits(page, ".inbox-view")
    page.set_viewport_size({"width": 1280, "height": 860})

    card.get_by_label("Note (sent with the decision)").fill("long but right")
    card.get_by_role("button", name="Accept").click()
    expect(card).to_have_count(0)
    done = _until(ai_api, first, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    title = done["variables"]["headline"]["data"]["title"]
    assert title.startswith("The workflow engine now checks every model answer")
    decision = _step_output(ai_api, first, "write_headline")["evaluation"]["escalation"]
    assert decision["by"] == "local-dev"

    other = page.locator(f".inbox-card[data-execution-id='{second}']")
    other.get_by_role("button", name="Reject").click()
    expect(other).to_have_count(0)
    rejected = _until(ai_api, second, {"succeeded", "failed"})
    assert rejected["status"] == "failed", rejected
    assert rejected["errorInfo"]["code"] == "GUARDRAIL_FAILED"

    event_card.get_by_role("button", name="Approve").click()
    expect(event_card).to_have_count(0)
    assert _until(ai_api, held, {"succeeded", "failed"})["status"] == "succeeded"


def test_an_agent_answer_escalated_by_its_guardrails_is_accepted_from_the_inbox(
    ai_server: Any, ai_api: httpx.Client, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    """An ``agent`` step (not only an ``llm`` one) whose answer fails its guardrails
    waits for a person: its card shows the agent's answer and the failed check, and
    accepting it completes the step with that answer."""
    from playwright.sync_api import expect

    workflow_id = _workflow(ai_api, AGENT_ESCALATED)
    execution_id = _start(ai_api, workflow_id)
    escalated = _waiting_output(ai_api, execution_id, "headline")
    assert escalated["status"] == "awaitingDecision"
    assert escalated["escalation"]["event"] == "guardrail.headline"

    page.goto(f"{ai_server.console}#/inbox")
    card = _escalation_card(
        page,
        execution_id,
        "guardrail.headline",
        "checks every answer its agents give with schemas and CEL",
    )
    shot(page, "inbox-agent-escalation")

    card.get_by_role("button", name="Accept").click()
    expect(card).to_have_count(0)
    done = _until(ai_api, execution_id, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    title = done["variables"]["headline"]["data"]["title"]
    assert title.startswith("The workflow engine now checks every answer its agents give")
    output = _step_output(ai_api, execution_id, "headline")
    assert output["evaluation"]["escalation"]["by"] == "local-dev"
    assert [e["kind"] for e in output["entries"]] == ["model", "tool", "model"]


def test_an_agent_that_asks_again_gets_a_new_card_live(
    ai_server: Any, ai_api: httpx.Client, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    """The page is open before the execution starts: its first call appears without a
    reload; approved, the same step run waits on its second call, whose card replaces
    the first (a new event name: the first answer is never shown again)."""
    from playwright.sync_api import expect

    workflow_id = _workflow(ai_api, TWO_CALLS)
    page.goto(f"{ai_server.console}#/inbox")
    expect(page.locator(".inbox-view .runs-status")).not_to_have_text("Loading…")
    page.evaluate("window.__noReload = true")
    execution_id = _start(ai_api, workflow_id)
    cards = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
    expect(cards).to_have_count(1)
    first_event = _waiting_output(ai_api, execution_id, "tiers")["approval"]["event"]
    expect(cards).to_have_attribute("data-event", first_event)
    assert json.loads(cards.locator(".inbox-args").inner_text()) == {"name": "first", "value": "a"}
    cards.get_by_role("button", name="Approve", exact=True).click()

    expect(cards.locator(".inbox-args")).to_contain_text('"second"')
    expect(cards).to_have_count(1)
    second_event = cards.get_attribute("data-event")
    assert second_event and second_event != first_event
    assert page.evaluate("window.__noReload") is True
    shot(page, "inbox-ai-second-call")
    cards.get_by_role("button", name="Approve", exact=True).click()
    expect(cards).to_have_count(0)
    done = _until(ai_api, execution_id, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["variables"]["first"] == "a" and done["variables"]["second"] == "b"


def test_a_call_proposed_while_the_live_stream_connects_gets_its_card(
    ai_server: Any, ai_api: httpx.Client, page: Any
) -> None:
    """The workflow's live stream hears events from when it is open: a step that starts
    waiting after the list was loaded and before then is found by the page loading the
    list again when the stream opens (not by the 60 s backstop)."""
    from playwright.sync_api import Route, expect

    workflow_id = _workflow(ai_api, TWO_CALLS)
    held: list[Route] = []

    def hold(route: Route) -> None:  # every workflow stream's token waits until released
        body = route.request.post_data_json or {}
        if "workflowId" in body:
            held.append(route)
        else:
            route.continue_()

    page.route("**/stream-tokens", hold)
    page.goto(f"{ai_server.console}#/inbox")
    expect(page.locator(".inbox-view .runs-status")).not_to_have_text("Loading…")
    for _ in range(200):
        if any(route.request.post_data_json["workflowId"] == workflow_id for route in held):
            break
        page.wait_for_timeout(50)
    else:
        raise AssertionError("the inbox did not open the workflow's stream")
    execution_id = _start(ai_api, workflow_id)
    _waiting_output(ai_api, execution_id, "tiers")
    cards = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
    page.wait_for_timeout(500)
    expect(cards).to_have_count(0)  # nothing has told the page yet

    page.evaluate("window.__noReload = true")
    for route in held:
        route.continue_()
    page.unroute("**/stream-tokens")
    expect(cards).to_have_count(1, timeout=10_000)
    assert page.evaluate("window.__noReload") is True
    cancelled = ai_api.post(f"/executions/{execution_id}/cancel", json={"reason": "test"})
    assert cancelled.status_code in (200, 202), cancelled.text
    expect(cards).to_have_count(0)


def test_hostile_args_render_as_text_and_a_refusal_stays_on_the_card(
    ai_server: Any,
    ai_api: httpx.Client,
    page: Any,
    problems: Any,
    shot: Callable[[Any, str], Path],
) -> None:
    """The proposed args come from a model: markup in them is text. The step names
    another answerer, so the API refuses the approval: the card says why and stays."""
    from playwright.sync_api import expect

    problems.expected.append("403")  # the refused POST, logged by the browser
    execution_id = _start(ai_api, _workflow(ai_api, HOSTILE_AGENT))
    _waiting_output(ai_api, execution_id, "note")

    page.goto(f"{ai_server.console}#/inbox")
    card = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
    expect(card).to_be_visible()
    assert json.loads(card.locator(".inbox-args").inner_text())["value"] == HOSTILE
    expect(card.locator("img")).to_have_count(0)
    expect(card.locator("script")).to_have_count(0)
    expect(card).to_contain_text("maria@example.com")
    card.get_by_role("button", name="Approve with edited args…").click()
    assert json.loads(card.locator("textarea").input_value())["value"] == HOSTILE

    card.get_by_role("button", name="Approve", exact=True).click()
    expect(card.locator(".row-error")).to_contain_text("EVENT_SENDER_NOT_ALLOWED")
    expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    shot(page, "inbox-ai-hostile")
    assert page.evaluate("window.__xss") is None
    assert ai_api.get(f"/executions/{execution_id}").json()["status"] == "waiting"
    expect(card).to_have_count(1)
    cancelled = ai_api.post(f"/executions/{execution_id}/cancel", json={"reason": "test"})
    assert cancelled.status_code in (200, 202), cancelled.text
    expect(card).to_have_count(0)


SALT = "inbox-ai-salt"
OWNER_KEY = "inbox-ai-owner-key-0123456789"
VIEWER_KEY = "inbox-ai-viewer-key-0123456789"


def test_a_viewer_sees_the_cards_without_actions(
    start_console: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
    page: Any,
    problems: Any,
) -> None:
    from playwright.sync_api import expect

    from shared.api.auth import hash_api_key

    keys = [
        f"{hash_api_key(OWNER_KEY, SALT)}:olga:default:owner",
        f"{hash_api_key(VIEWER_KEY, SALT)}:vera:default:viewer",
    ]
    folder = _recordings(tmp_path_factory.mktemp("recordings-keyed"))
    server = start_console(
        {
            "WFE_API_KEYS": ",".join(keys),
            "WFE_API_KEY_SALT": SALT,
            "WFE_AI_RECORDINGS_DIR": str(folder),
            "WFE_AI_PROVIDER": "none",
        }
    )
    with httpx.Client(
        base_url=f"{server.base}/api/v1", headers={"X-API-Key": OWNER_KEY}, timeout=30
    ) as owner:
        agent = _start(owner, _workflow(owner, AGENT))
        guarded = _start(owner, _workflow(owner, GUARDED))
        _waiting_output(owner, agent, "remember")
        _waiting_output(owner, guarded, "write_headline")

        problems.expected.append("401")  # GET /session before signing in
        page.goto(f"{server.console}#/inbox")
        page.get_by_label("API key").fill(VIEWER_KEY)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".role")).to_have_text("viewer")
        page.goto(f"{server.console}#/inbox")
        for execution_id in (agent, guarded):
            card = page.locator(f".inbox-card[data-execution-id='{execution_id}']")
            expect(card).to_contain_text("Your role cannot answer.")
            expect(card.get_by_role("button")).to_have_count(0)
            expect(card.locator("textarea, input")).to_have_count(0)
        approval = page.locator(f".inbox-card[data-execution-id='{agent}'] .inbox-args")
        assert json.loads(approval.inner_text()) == {"name": "tier", "value": "silver"}
