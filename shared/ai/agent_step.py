"""``agent``: a tool-calling loop on LangGraph with durable checkpoints and human
approval of tool calls (see ``shared.ai.agent_run`` and ``docs/ai.md``, "agent steps").

The step type itself is light: checking a config needs no LangChain; the run loads
LangChain and LangGraph on the first agent step a process runs.

``resume`` takes the answer to a proposed call (the payload of the event named in
``output.approval.event``)::

    {"decision": "approve" | "reject", "args": {...}?, "by": "<who>"?, "reason": "..."?}

A payload that is not such an answer leaves the run waiting for a proper one. An
answer sent through the API is recorded as given by its authenticated sender (``by``
in the payload counts only for events sent without one, such as in-process tests);
the step's ``answeredBy`` limits who may send it (the events endpoint answers anyone
else 403, and the step leaves the run waiting on such an answer all the same).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.ai.agent_config import AgentConfig, check_agent
from shared.ai.llm_step import process_settings
from shared.ai.services import AiServices
from shared.engine.steps import Outcome, Park, StepContext, StepType
from shared.errors import Issue, StepFailed
from shared.models import WorkflowStep

PENDING_KEY = "approvalPending"
DECISION_KEY = "approvalDecision"
GUARDRAIL_KEY = "guardrail"
"""Run state of an answer its guardrails escalated (``shared.ai.guardrails_run``)."""
DECISIONS = {"approve": True, "approved": True, "reject": False, "rejected": False}


def decision_from(value: Any) -> dict[str, Any] | None:
    """The answer an approval event carries, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    verdict = value.get("decision")
    if not isinstance(verdict, str) or verdict.lower() not in DECISIONS:
        return None
    args = value.get("args")
    if args is not None and not isinstance(args, dict):
        return None
    decision: dict[str, Any] = {"approved": DECISIONS[verdict.lower()], "args": args}
    for key in ("by", "reason"):
        if isinstance(value.get(key), str) and value[key].strip():
            decision[key] = value[key].strip()[:1000]
    return decision


class AgentStep(StepType):
    type_name = "agent"
    config_model = AgentConfig

    def __init__(self, services: AiServices | None = None) -> None:
        self.services = services or AiServices()

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        settings = self.services.deps.settings or process_settings()
        fallback = step.on_error.fallback_step is not None
        return check_agent(config, f"{path}/config", settings, has_fallback=fallback)

    async def execute(self, ctx: StepContext) -> Outcome:
        from shared.ai.agent_run import AgentRunner  # LangChain loads here, lazily

        return await AgentRunner(self.services).execute(ctx)

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        """An approval event arrived: keep the checked decision and run again now (the
        graph resumes with it); anything else leaves the run waiting. A person's
        decision on an answer its guardrails escalated completes or fails the step."""
        if isinstance(ctx.run.state.get(GUARDRAIL_KEY), dict):
            from shared.ai.guardrails_run import decide

            return decide(ctx, payload)
        pending = ctx.run.state.get(PENDING_KEY)
        if not isinstance(pending, dict):
            raise StepFailed(
                "the agent step was woken with no proposed call waiting",
                code="APPROVAL_UNEXPECTED",
                retryable=False,
            )
        wake = payload if isinstance(payload, dict) else {}
        decision = decision_from(wake.get("value"))
        sender = wake.get("sender")
        allowed = ctx.config.answered_by if isinstance(ctx.config, AgentConfig) else None
        # the events endpoint refuses a sender answeredBy does not name; nor does the step
        refused = isinstance(sender, str) and allowed is not None and sender not in allowed
        if wake.get("signal") != pending.get("event") or decision is None or refused:
            ignored = {"signal": wake.get("signal"), "at": ctx.now.isoformat()}
            return Park(
                until=datetime.fromisoformat(str(pending["deadline"])),
                state={PENDING_KEY: pending, "approvalIgnored": ignored},
                signal=str(pending["event"]),
            )
        decision["event"] = pending["event"]
        if isinstance(sender, str):
            # who decided is the authenticated sender; the payload's "by" is only a claim
            decision["by"] = sender
        return Park(until=ctx.now, state={DECISION_KEY: decision, "signal": None})
