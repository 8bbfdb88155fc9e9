"""One llm step run's conversation: where each model turn comes from, tool calls, answers.

A turn is taken, in order, from the replay record of the step visit (already paid),
else from the workflow's recording file (only when no model is configured), else
from the model (checked against the budgets before the call, recorded right after).
Budgets are checked again after every turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool

from shared.ai.accounting import BudgetExceeded, BudgetGuard, Usage, turn_usage
from shared.ai.choice import extract_json
from shared.ai.models import ModelError, ModelSpec, call_model
from shared.ai.replay import Recording
from shared.ai.schema import validate
from shared.ai.services import AiEnv
from shared.ai.tools import ToolBox
from shared.ai.turns import message_from_turn, text_of, turn_from_message
from shared.engine.steps import StepContext
from shared.errors import StepFailed

ALWAYS_RUN = frozenset({"set_variable"})
"""Tools whose effect lives in the step result: run again on replay, never recorded."""


@dataclass
class LlmSession:
    """The state of one step run's model conversation (the LangGraph runtime context)."""

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
    usage: Usage = field(default_factory=Usage)
    origins: list[str] = field(default_factory=list)
    tool_log: list[dict[str, Any]] = field(default_factory=list)

    async def turn(self, messages: list[BaseMessage]) -> AIMessage:
        index = len(self.origins)
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
            turn, origin = await self._live(messages, slot), "model"
        self.origins.append(origin)
        model = str(turn.get("model") or self.spec.model)
        self.guard.require_price(model, self.env.settings.ai.prices)
        used = turn_usage(
            turn.get("usage"), model, self.env.settings.ai.prices, live=origin == "model"
        )
        self.usage = self.usage.add(used)
        over = self.guard.exceeded(self.usage)
        if over:
            raise BudgetExceeded(f"budget exceeded after model turn {index + 1}: {over}")
        return message_from_turn(turn, index)

    async def _live(self, messages: list[BaseMessage], slot: str) -> dict[str, Any]:
        if self.model is None:
            raise StepFailed(
                f"no model is configured (WFE_AI_PROVIDER=none) and there is no recording of "
                f"step {self.ctx.step.id!r} (WFE_AI_RECORDINGS_DIR)",
                code="NO_MODEL",
                retryable=False,
            )
        self.guard.require_price(self.spec.model, self.env.settings.ai.prices)
        over = self.guard.exceeded(self.usage, before_call=True)
        if over:
            raise BudgetExceeded(f"budget reached before a model call: {over}")
        try:
            message = await call_model(self.model, messages, self.spec.timeout_seconds)
        except ModelError as error:
            raise StepFailed(error.message, code=error.code, retryable=error.retryable) from error
        turn = turn_from_message(message, self.spec.model)
        await self.env.replay.save(self.ctx.run, slot, turn)  # paid: never asked twice
        return turn

    async def run_tools(self, message: AIMessage) -> list[ToolMessage]:
        results = []
        for call in message.tool_calls:
            if len(self.tool_log) >= self.max_tool_calls:
                raise StepFailed(
                    f"the model asked for more than maxToolCalls={self.max_tool_calls} tool calls",
                    code="TOO_MANY_TOOL_CALLS",
                    retryable=False,
                )
            name, call_id = call["name"], str(call.get("id"))
            content = await self._tool(name, call.get("args") or {}, call_id)
            self.tool_log.append({"name": name, "args": call.get("args"), "result": content[:500]})
            results.append(ToolMessage(content=content, tool_call_id=call_id, name=name))
        return results

    async def _tool(self, name: str, args: dict[str, Any], call_id: str) -> str:
        slot = f"tool:{call_id}"
        if name not in ALWAYS_RUN and isinstance(self.recorded.get(slot), str):
            return str(self.recorded[slot])
        tool = self.tools.get(name)
        if tool is None:  # the model named a tool it was not given: tell it, go on
            return json.dumps({"error": f"no tool named {name[:60]!r}; have {sorted(self.tools)}"})
        try:
            content = str(await tool.ainvoke(args))
        except Exception as exc:  # bad arguments (validation) or a tool bug: the model sees it
            content = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]})
        if name not in ALWAYS_RUN:
            await self.env.replay.save(self.ctx.run, slot, content)
        return content

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

    @property
    def source(self) -> str:
        """Where the turns came from: model, replay, recording, or mixed."""
        kinds = set(self.origins)
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")
