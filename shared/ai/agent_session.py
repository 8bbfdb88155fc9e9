"""One agent step run's model calls, tool calls and guardrail checks (the LangGraph
runtime context).

A model turn is taken, in order, from the replay record of the step visit (paid for
already, e.g. by the attempt a budget paused), else from the workflow's recording
file (only when no model is configured), else from the model (checked against the
budgets before the call, recorded right after). Every model call and tool call makes
a sub-entry ``{kind, name, input, output, tokens, costUsd, durationMs, at}`` that is
kept in the graph state (so in its checkpoints) and published as ``step.progress``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool

from shared.ai.accounting import BudgetExceeded, BudgetGuard, Usage, turn_usage
from shared.ai.agent_events import publish_progress
from shared.ai.choice import extract_json
from shared.ai.guardrails import Guardrails
from shared.ai.guardrails_run import GuardrailCheck
from shared.ai.models import ModelError, ModelSpec, call_model
from shared.ai.replay import Recording
from shared.ai.schema import validate
from shared.ai.services import AiEnv
from shared.ai.tools import ToolBox
from shared.ai.turns import message_from_turn, text_of, turn_from_message
from shared.engine.steps import StepContext
from shared.errors import StepFailed

MAX_TEXT = 2_000


def _cut(text: str, cap: int = MAX_TEXT) -> str:
    return text if len(text) <= cap else text[: cap - 15] + "...(truncated)"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class AgentSession:
    """What the agent graph's nodes use; rebuilt on every delivery of the step run."""

    env: AiEnv
    ctx: StepContext
    spec: ModelSpec
    model: Any
    """The chat model bound to the tools, or None (no model configured)."""
    recording: Recording | None
    recorded: dict[str, Any]
    guard: BudgetGuard
    toolbox: ToolBox
    tools: dict[str, BaseTool]
    schema: dict[str, Any] | None
    max_tool_calls: int
    approval_tools: frozenset[str]
    on_reject: str
    approval_timeout_seconds: float
    usage: Usage = field(default_factory=Usage)
    """The step run's usage so far (the graph state's, kept here for failures)."""
    origins: list[str] = field(default_factory=list)
    """Where this delivery's model turns came from."""
    guardrails: Guardrails | None = None
    """Validators of the final answer (the ``guard`` node runs them)."""
    max_repairs: int = 0
    """Schema repairs each answer may have (a guardrail retry starts them afresh)."""

    # --- model turns ---

    async def turn(
        self, messages: list[BaseMessage], index: int, before: Usage, entry_index: int
    ) -> tuple[AIMessage, dict[str, Any], Usage]:
        started = time.monotonic()
        slot = f"turn:{index}"
        recorded = self.recorded.get(slot)
        if isinstance(recorded, dict):
            turn, origin = recorded, "replay"
        elif self.recording is not None:
            if index >= len(self.recording.turns):
                raise StepFailed(
                    f"the recording {self.recording.source} has no turn {index + 1}",
                    code="RECORDING_EXHAUSTED",
                    retryable=False,
                )
            turn, origin = self.recording.turns[index], "recording"
        else:
            turn, origin = await self._live(messages, slot, before), "model"
        self.origins.append(origin)
        model = str(turn.get("model") or self.spec.model)
        prices = self.env.settings.ai.prices
        self.guard.require_price(model, prices)
        used = turn_usage(turn.get("usage"), model, prices, live=origin == "model")
        self.usage = before.add(used)
        message = message_from_turn(turn, index)
        entry = {
            "index": entry_index,
            "kind": "model",
            "name": model,
            "input": {
                "messages": len(messages),
                "last": _cut(text_of(messages[-1].content)) if messages else "",
            },
            "output": {
                "content": _cut(text_of(message.content)),
                "toolCalls": [{"name": c["name"], "args": c["args"]} for c in message.tool_calls],
            },
            "tokens": {"input": used.input_tokens, "output": used.output_tokens},
            "costUsd": round(used.cost_usd, 8),
            "durationMs": round((time.monotonic() - started) * 1000, 1),
            "at": _now(),
            "source": origin,
        }
        await self.publish({"entry": entry})
        over = self.guard.exceeded(self.usage)
        if over:
            raise BudgetExceeded(f"budget exceeded after model turn {index + 1}: {over}")
        return message, entry, self.usage

    async def _live(self, messages: list[BaseMessage], slot: str, before: Usage) -> dict[str, Any]:
        if self.model is None:
            raise StepFailed(
                f"no model is configured (WFE_AI_PROVIDER=none) and there is no recording of "
                f"step {self.ctx.step.id!r} (WFE_AI_RECORDINGS_DIR)",
                code="NO_MODEL",
                retryable=False,
            )
        self.guard.require_price(self.spec.model, self.env.settings.ai.prices)
        over = self.guard.exceeded(before, before_call=True)
        if over:
            raise BudgetExceeded(f"budget reached before a model call: {over}")
        try:
            message = await call_model(self.model, messages, self.spec.timeout_seconds)
        except ModelError as error:
            raise StepFailed(error.message, code=error.code, retryable=error.retryable) from error
        turn = turn_from_message(message, self.spec.model)
        await self.env.replay.save(self.ctx.run, slot, turn)  # paid: never asked twice
        return turn

    # --- tool calls ---

    def proposal(self, call: dict[str, Any]) -> dict[str, Any]:
        """A proposed call waiting for approval, with the event that answers it: one
        name per step visit and call (a random part: it cannot be sent in advance)."""
        run = self.ctx.run
        event = f"agent.approval.{run.step_id}.v{run.iteration}.{secrets.token_hex(8)}"
        now = self.ctx.now
        return {
            "event": event,
            "tool": call["name"],
            "args": call.get("args") or {},
            "callId": str(call.get("id")),
            "stepId": run.step_id,
            "requestedAt": now.isoformat(),
            "deadline": (now + timedelta(seconds=self.approval_timeout_seconds)).isoformat(),
        }

    async def run_tool(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The tool's result (errors included: the model sees them) and the variables
        it set."""
        tool = self.tools.get(name)
        if tool is None:  # the model named a tool it was not given: tell it, go on
            known = sorted(self.tools)
            return json.dumps({"error": f"no tool named {name[:60]!r}; have {known}"}), {}
        self.toolbox.set_vars.clear()
        try:
            content = str(await tool.ainvoke(args))
        except Exception as exc:  # bad arguments (validation) or a tool bug: the model sees it
            content = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]})
        return content, dict(self.toolbox.set_vars)

    def tool_entry(
        self,
        index: int,
        name: str,
        args: dict[str, Any],
        content: str,
        started: float,
        approval: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": index,
            "kind": "tool",
            "name": name,
            "input": args,
            "output": _cut(content),
            "tokens": {"input": 0, "output": 0},
            "costUsd": 0.0,
            "durationMs": round((time.monotonic() - started) * 1000, 1),
            "at": _now(),
        }
        if approval is not None:
            entry["approval"] = approval
        return entry

    # --- answers and the stream ---

    def answer(self, message: AIMessage) -> tuple[Any, str | None]:
        """The structured answer, or why it is not acceptable (None: accepted)."""
        text = text_of(message.content)
        if self.schema is None:
            return text, None
        data = extract_json(text)
        if data is None:
            return None, "the answer is not JSON"
        problems = validate(data, self.schema)
        if problems:
            return None, "; ".join(problems[:5])
        return data, None

    async def evaluate(
        self, messages: list[BaseMessage], data: Any, round_: int, before: Usage
    ) -> list[dict[str, Any]]:
        """The verdicts of the guardrails on the final answer (round ``round_``: the
        judge's verdicts are recorded in slots ``judge:<round>:<index>`` and replayed)."""
        assert self.guardrails is not None
        self.usage = before
        check = GuardrailCheck(self.ctx, self, self.guardrails, round=round_)
        if self.schema is not None:
            checked = data
        else:
            text = text_of(messages[-1].content) if messages else ""
            parsed = extract_json(text)
            checked = parsed if isinstance(parsed, dict | list) else text
        return await check.evaluate(checked)

    async def publish(self, data: dict[str, Any]) -> None:
        await publish_progress(self.env.executions, self.ctx.run, datetime.now(UTC), data)

    @property
    def source(self) -> str:
        """Where this delivery's turns came from: model, replay, recording, mixed or
        checkpoint (every turn was restored from the graph's checkpoints)."""
        kinds = set(self.origins)
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "checkpoint")
