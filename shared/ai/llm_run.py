"""How an ``llm`` step runs (``shared.ai.llm_step``), loaded with LangChain and
LangGraph on the first llm step a process runs.

Every model turn is recorded on the step run before the step commits, so a redelivery,
a retry or a resume replays it instead of paying again; with no model configured the
step replays the workflow's recording file and says so (``"source": "recording"``).
Token and cost accounting covers the step and the execution; a budget that runs out
fails the step (BUDGET_EXCEEDED) or pauses the execution (``onExceeded: pause``):
resuming it approves going over the budget for this step run.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from shared.ai.accounting import USAGE_KEY, BudgetExceeded, execution_usage, guard_for
from shared.ai.choice import extract_json
from shared.ai.guardrails_run import GuardrailCheck, feedback_message, settle, summary, waiting
from shared.ai.llm_config import LlmConfig, MemoryOptions, resolve_model
from shared.ai.llm_graph import LlmState, build_graph
from shared.ai.llm_session import LlmSession
from shared.ai.models import ModelError
from shared.ai.services import AiEnv, AiServices
from shared.ai.tools import ToolBox
from shared.ai.turns import dump_messages, load_messages, text_of
from shared.engine.steps import Complete, Outcome, Park, StepContext
from shared.errors import StepFailed
from shared.models import StepRun, StepRunStatus

PAUSED_KEY = "budgetPaused"
MEMORY_KEY = "memory"


class LlmRunner:
    """Runs llm steps with the services of their ``LlmStep``."""

    def __init__(self, services: AiServices) -> None:
        self.services = services

    async def execute(self, ctx: StepContext) -> Outcome:
        config: LlmConfig = ctx.config
        parked = waiting(ctx)  # an escalated answer still waiting for a person
        if parked is not None:
            return parked
        env = self.services.env(ctx.services)
        runs = await env.executions.list_runs(ctx.execution.id) if env.executions else []
        session = await self._session(ctx, env, config, runs)
        prompt = str(ctx.render(config.prompt))
        memory = _memory(runs, ctx.run, config.memory)
        messages: list[AnyMessage] = [
            SystemMessage(_system(ctx, config)),
            *memory,
            HumanMessage(prompt),
        ]
        ctx.run.input = {"prompt": prompt[:2000], "model": session.spec.model}
        limit = 3 * (config.max_tool_calls + config.max_repairs + 2) + 5
        rounds: list[list[dict[str, Any]]] = []
        try:
            result = await build_graph().ainvoke(
                LlmState(messages=messages, repairs_left=config.max_repairs),
                RunnableConfig(recursion_limit=limit),
                context=session,
            )
            guardrails = config.guardrails
            if guardrails is not None:
                check = GuardrailCheck(ctx, session, guardrails)
                while True:
                    rounds.append(await check.evaluate(_answer(config, result)))
                    if all(v["passed"] for v in rounds[-1]):
                        break
                    if guardrails.on_fail != "retry" or len(rounds) > guardrails.max_retries:
                        break
                    retry = HumanMessage(feedback_message(rounds[-1]))
                    result = await build_graph().ainvoke(
                        LlmState(
                            messages=[*result["messages"], retry],
                            repairs_left=config.max_repairs,
                        ),
                        RunnableConfig(recursion_limit=limit),
                        context=session,
                    )
        except BudgetExceeded as exceeded:
            _keep_usage(ctx, session)
            if config.budget.on_exceeded == "pause":
                state = {PAUSED_KEY: {"reason": exceeded.message, "at": ctx.now.isoformat()}}
                return Park(until=ctx.now, pause=exceeded.message, state=state)
            raise
        except StepFailed:
            _keep_usage(ctx, session)
            raise
        _keep_usage(ctx, session)
        final = result["messages"][-1]
        text = text_of(final.content)
        if config.memory is not None:
            kept = [*memory, HumanMessage(prompt), AIMessage(text)][-config.memory.max_messages :]
            ctx.run.state[MEMORY_KEY] = {"key": config.memory.key, "messages": dump_messages(kept)}
        complete = _complete(session, config, text, result.get("data"))
        if config.guardrails is None:
            return complete
        complete.output["evaluation"] = summary(rounds, config.guardrails)
        return await settle(ctx, config.guardrails, complete, session)

    async def _session(
        self, ctx: StepContext, env: AiEnv, config: LlmConfig, runs: list[StepRun]
    ) -> LlmSession:
        spec = resolve_model(config.model, env.settings)
        toolbox = ToolBox(ctx, env, config)
        tools = toolbox.tools()
        model: Any = None
        recording = None
        if env.models.configured:
            try:
                model = env.models.chat_model(spec)
                if tools:
                    model = model.bind_tools(list(tools.values()))
            except ModelError as error:
                raise StepFailed(
                    error.message, code=error.code, retryable=error.retryable
                ) from None
            except NotImplementedError:
                raise StepFailed(
                    f"model {spec.model} cannot call tools", code="MODEL_NO_TOOLS", retryable=False
                ) from None
        else:
            recording = env.recordings.find(ctx.definition.name, ctx.step.id)
        before = execution_usage(runs, ctx.run.idempotency_key)
        approved = PAUSED_KEY in ctx.run.state
        return LlmSession(
            env=env,
            ctx=ctx,
            spec=spec,
            model=model,
            recording=recording,
            recorded=await env.replay.load(ctx.run),
            guard=guard_for(config.budget, env.settings, before, approved),
            toolbox=toolbox,
            tools=tools,
            schema=config.output_schema,
            max_tool_calls=config.max_tool_calls,
        )


def _system(ctx: StepContext, config: LlmConfig) -> str:
    parts = [str(ctx.render(config.system))] if config.system else []
    if config.output_schema is not None:
        parts.append(
            "Answer with one JSON object matching this JSON schema, and nothing else: "
            + json.dumps(config.output_schema, separators=(",", ":"))
        )
    return "\n\n".join(parts) or "You are a careful assistant inside a workflow."


def _memory(runs: list[StepRun], current: StepRun, options: MemoryOptions | None) -> list[Any]:
    """The conversation of the latest earlier llm step of this execution with the key."""
    if options is None:
        return []
    for run in reversed(runs):
        memory = run.state.get(MEMORY_KEY)
        if run.id == current.id or run.status != StepRunStatus.SUCCEEDED:
            continue
        if isinstance(memory, dict) and memory.get("key") == options.key:
            return load_messages(memory.get("messages"))[-options.max_messages :]
    return []


def _answer(config: LlmConfig, result: Any) -> Any:
    """What guardrails check: the structured answer with an ``outputSchema``; else the
    text, as JSON when it is a JSON object or array."""
    if config.output_schema is not None:
        return result.get("data")
    text = text_of(result["messages"][-1].content)
    data = extract_json(text)
    return data if isinstance(data, dict | list) else text


def _keep_usage(ctx: StepContext, session: LlmSession) -> None:
    if session.usage.calls:
        ctx.run.state = {**ctx.run.state, USAGE_KEY: session.usage.to_dict()}


def _complete(session: LlmSession, config: LlmConfig, text: str, data: Any) -> Complete:
    source = session.source
    usage = session.usage
    output: dict[str, Any] = {
        "text": text,
        "source": source,
        "recorded": source != "model",
        "model": session.spec.model,
        "turns": len(session.origins),
        "usage": {
            "step": usage.to_dict(),
            "execution": session.guard.execution_before.add(usage).to_dict(),
        },
    }
    if config.output_schema is not None:
        output["data"] = data
    if session.recording is not None:
        output["recording"] = session.recording.source
    if session.tool_log:
        output["toolCalls"] = session.tool_log
    if config.memory is not None:
        output["memory"] = {"key": config.memory.key}
    set_vars = dict(session.toolbox.set_vars)
    if config.set_vars and isinstance(data, dict):
        set_vars.update(data)
    return Complete(output=output, set_vars=set_vars or None)
