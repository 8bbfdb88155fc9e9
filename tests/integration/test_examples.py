"""Every example runs offline to ``succeeded`` under ``wfe run FILE --json``.

Each example also has its own facts checked (retries, fallbacks, fan-out order...),
and the approval example is driven in-process through its event path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _cli import EXAMPLES, Wfe

from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.dev.demo_service import DemoServer
from shared.engine.validation import parse_documents
from shared.models import ExecutionStatus, WorkflowExecution
from shared.settings import Settings

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.y*ml"))
Document = dict[str, Any]


def runs_of(document: Document, step_id: str) -> list[Document]:
    """The step-run summaries of ``step_id``, in history order."""
    return [step for step in document["steps"] if step["stepId"] == step_id]


def only(document: Document, step_id: str) -> Document:
    """The single run of ``step_id``."""
    found = runs_of(document, step_id)
    assert len(found) == 1, found
    return found[0]


def check_order(doc: Document, path: Path) -> None:
    charges = runs_of(doc, "charge_payment")
    assert [c["attempt"] for c in charges] == [1, 2, 3]
    assert [c["status"] for c in charges] == ["failed", "failed", "succeeded"]
    assert [c.get("error", {}).get("code") for c in charges] == ["HTTP_503", "HTTP_503", None]
    assert only(doc, "create_label")["scope"] == "fulfil[0]"
    assert only(doc, "notify_customer")["scope"] == "fulfil[1]"
    result = doc["result"]
    assert result["status"] == "fulfilled"
    assert result["chargeId"].startswith("ch_")
    assert result["trackingNumber"].startswith("1Z")
    assert result["customerNotified"] is True
    assert runs_of(doc, "reject_order") == []


def check_approval(doc: Document, path: Path) -> None:
    wait = only(doc, "wait_for_approval")
    assert (wait["status"], wait["error"]["code"]) == ("failed", "EVENT_TIMEOUT")
    assert only(doc, "escalate")["status"] == "succeeded"
    assert runs_of(doc, "record_decision") == []
    assert only(doc, "approve")["status"] == "succeeded"
    assert doc["result"] == {
        "expenseId": "EXP-2024-117",
        "decision": "approved",
        "decidedBy": "escalation-policy",
        "path": "escalated after EVENT_TIMEOUT",
    }


def check_enrichment(doc: Document, path: Path) -> None:
    leads = yaml.safe_load(path.read_text())["variables"]["leads"]
    items = only(doc, "enrich_all")["output"]
    assert [item["email"] for item in items] == [lead["email"] for lead in leads]
    scopes = sorted(run["scope"] for run in runs_of(doc, "score_lead"))
    assert scopes == sorted(f"enrich_all[{i}]" for i in range(len(leads)))
    result = doc["result"]
    assert result["total"] == len(leads)
    expected = [item["email"] for item in items if item["qualified"]]
    assert result["qualified"] == expected and expected
    assert all(item["company"] is not None for item in items if item["qualified"])


def check_report(doc: Document, path: Path) -> None:
    fetched = only(doc, "fetch_sales")["output"]["body"]
    published = only(doc, "publish_report")
    assert published["status"] == "succeeded"
    assert published["output"]["topic"] == "reports"
    assert published["output"]["messageId"]
    assert doc["result"]["messageId"] == published["output"]["messageId"]
    verdict = "on-target" if fetched["revenue"] >= 7000 else "below-target"
    assert doc["result"]["verdict"] == verdict
    assert only(doc, "on_target" if verdict == "on-target" else "below_target")


def check_onboarding(doc: Document, path: Path) -> None:
    child = only(doc, "normalize_address")
    assert child["output"]["country"] == "GB"
    assert doc["result"]["address"] == child["output"]
    assert only(doc, "assign_account_manager")["status"] == "skipped"
    assert doc["result"]["accountManager"] == "pooled support team"
    assert only(doc, "cooling_off")["durationMs"] >= 450
    assert doc["result"]["welcomeKitTracking"].startswith("1Z")


def check_fallback(doc: Document, path: Path) -> None:
    lookup = only(doc, "lookup_customer")  # a 404 is not retried despite the policy
    assert (lookup["status"], lookup["error"]["code"]) == ("failed", "HTTP_404")
    assert only(doc, "default_profile")["status"] == "succeeded"
    assert runs_of(doc, "use_profile") == []
    assert only(doc, "loyalty_points")["status"] == "failed"
    assert only(doc, "greet")["status"] == "succeeded"
    assert doc["result"]["loyalty"] == "unavailable (HTTP_404)"
    assert doc["result"]["profileSource"] == "default (HTTP_404)"


def check_triage(doc: Document, path: Path) -> None:
    triage = only(doc, "triage")["output"]
    assert [entry["node"] for entry in triage["path"]][:4] == [
        "is_incident",
        "sla",
        "is_urgent_call",
        "classify",
    ]
    classify = triage["path"][3]
    # offline: no model is configured, so the AI node fell back to the history router
    assert classify["decidedBy"] == "history"
    assert classify["fallbackReason"]["code"] == "NO_MODEL"
    queues = {"billing": "billing_queue", "technical": "tech_queue", "account": "account_queue"}
    assert triage["outcome"] == queues[classify["label"]]
    assert only(doc, triage["outcome"])["status"] == "succeeded"
    assert doc["result"]["slaHours"] == 4
    assert doc["result"]["reply"].startswith("Ticket T-1042 is with our ")


def check_content(doc: Document, path: Path) -> None:
    for step_id in ("draft_post", "shorten_title"):
        output = only(doc, step_id)["output"]
        assert (output["source"], output["recorded"]) == ("recording", True)
        assert output["recording"] == "content_pipeline.recording.json"
        assert output["usage"]["step"]["liveCalls"] == 0
    draft = only(doc, "draft_post")["output"]
    assert draft["toolCalls"][0]["name"] == "read_variables"
    assert "Workflow Engine 1.0" in draft["toolCalls"][0]["result"]  # the tool really ran
    post = doc["result"]["post"]
    assert post["title"] == draft["data"]["title"]
    assert post["shortTitle"] == "Workflow Engine 1.0 is here"
    assert doc["result"]["recorded"] is True and doc["result"]["toolCalls"] == ["read_variables"]


def check_agent_research(doc: Document, path: Path) -> None:
    findings = only(doc, "research")["output"]
    assert (findings["source"], findings["recording"]) == (
        "recording",
        "agent_research.recording.json",
    )
    kinds = [(entry["kind"], entry["name"]) for entry in findings["entries"]]
    model = findings["model"]
    assert kinds == [
        ("model", model),
        ("tool", "read_variables"),
        ("model", model),
        ("tool", "step_history"),
        ("model", model),
    ]
    assert "two stores closed for refits" in findings["entries"][1]["output"]  # it ran
    assert '"load_sales"' in findings["entries"][3]["output"]
    assert doc["result"]["report"]["missed"] == ["south"]
    assert doc["result"]["calls"][1] == "tool:read_variables"
    assert findings["usage"]["step"]["liveCalls"] == 0


CHECKS: dict[str, Callable[[Document, Path], None]] = {
    "agent_research": check_agent_research,
    "support_triage": check_triage,
    "content_pipeline": check_content,
    "order_fulfilment": check_order,
    "approval": check_approval,
    "lead_enrichment": check_enrichment,
    "daily_sales_report": check_report,
    "customer_onboarding": check_onboarding,
    "retry_and_fallback": check_fallback,
}


def test_every_required_example_exists() -> None:
    assert {path.stem for path in EXAMPLE_FILES} >= set(CHECKS)


def test_examples_validate(wfe: Wfe) -> None:
    result = wfe("validate", *EXAMPLE_FILES)
    assert result.code == 0, result.output
    assert result.stdout.count(": ok (") == len(EXAMPLE_FILES)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_runs_offline(wfe: Wfe, db_file: Path, path: Path) -> None:
    result = wfe("run", path, "--json", "--db", db_file)
    assert result.code == 0, result.output
    document = result.json()
    assert document["status"] == "succeeded", result.output
    assert "✓" in result.stderr  # progress went to stderr, JSON alone to stdout
    check = CHECKS.get(path.stem)
    if check is not None:
        check(document, path)


# -- the approval example's event path, in-process ---------------------------------------


async def _wait_for(runtime: LocalRuntime, execution_id: str, step_id: str) -> None:
    """Until ``step_id`` is parked waiting (the approval request is out)."""
    for _ in range(200):
        runs = await runtime.app.step_history(execution_id)
        if any(r.step_id == step_id and r.status.value == "waiting" for r in runs):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{step_id} never waited")


async def _finished(runtime: LocalRuntime, execution_id: str) -> WorkflowExecution:
    for _ in range(500):
        execution = await runtime.app.get_execution(execution_id)
        if execution.status.terminal:
            return execution
        await asyncio.sleep(0.01)
    raise AssertionError("the execution did not finish")


@pytest.mark.parametrize(("approved", "last_step"), [(True, "approve"), (False, "reject")])
async def test_approval_event_path(tmp_path: Path, approved: bool, last_step: str) -> None:
    raw = parse_documents((EXAMPLES / "approval.yaml").read_text(), "approval.yaml")[0]
    settings = Settings.local_mode(str(tmp_path / "wfe.db"), http_allowed_hosts=["127.0.0.1"])
    async with DemoServer() as demo, build_local(settings) as runtime:
        workflow = await runtime.app.create_workflow(raw)
        started = await runtime.app.start_execution(
            StartRequest(workflow.id, {"demoUrl": demo.url})
        )
        await _wait_for(runtime, started.id, "wait_for_approval")
        await runtime.app.send_event(started.id, "approval", {"approved": approved, "by": "maria"})
        execution = await _finished(runtime, started.id)
        steps = [run.step_id for run in await runtime.app.step_history(started.id)]
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == {
        "expenseId": "EXP-2024-117",
        "decision": "approved" if approved else "rejected",
        "decidedBy": "maria",
        "path": "manager",
    }
    assert "record_decision" in steps and "escalate" not in steps
    assert steps[-1] == last_step
