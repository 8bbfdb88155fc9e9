"""How an ``agent`` step runs (``shared.ai.agent_step``), loaded with LangChain and
LangGraph on the first agent step a process runs.

The loop (``shared.ai.agent_graph``) runs with the runtime's ``StoreCheckpointSaver``
on the thread of the step visit (``agent_thread_id``: the execution, the scope, the
step and its visit, not the attempt nor the redrive generation), so every delivery
of the visit (a redelivery, a retry, a resume after a crash, a budget pause or an
approval, a redrive) goes on from the last completed model or tool call. A redrive
whose thread stopped on a failed node or on an approval that cannot come any more
(a rejection, a timeout) first forks the thread without that node's recorded outcome,
so the call is proposed again (``_redrive_forks``); a redrive of an answer its
guardrails failed sends their failed verdicts to the agent on the same thread, which
answers anew (``_redrive_asks_again``).

A proposed call of a tool that ``requiresApproval`` parks the run on a signal of its
own (``proposal["event"]``) with the call in the run's output and on the event
stream; the event's payload is checked by ``AgentStep.resume`` and handed to the
graph as ``Command(resume=...)`` on the next delivery.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from shared.ai.accounting import USAGE_KEY, BudgetExceeded, Usage, execution_usage, guard_for
from shared.ai.agent_config import AgentConfig
from shared.ai.agent_graph import AgentState, build_agent_graph
from shared.ai.agent_session import AgentSession
from shared.ai.agent_step import DECISION_KEY, PENDING_KEY
from shared.ai.checkpointer import thread_id_for
from shared.ai.guardrails_run import feedback_message, settle, summary, waiting
from shared.ai.llm_run import MEMORY_KEY, PAUSED_KEY, _memory, _system
from shared.ai.models import ModelError, resolve_spec
from shared.ai.services import AiEnv, AiServices
from shared.ai.tools import ToolBox
from shared.ai.turns import dump_messages, text_of
from shared.engine.policy import cap_output
from shared.engine.steps import Complete, Outcome, Park, StepContext
from shared.errors import StepFailed
from shared.models import StepRun

OUTPUT_BYTES = 256 * 1024
"""The cap of a waiting run's output (as the engine caps a completed one)."""
ENTRIES_BYTES = 128 * 1024
"""Sub-entries a run's output keeps at most (the latest)."""


def agent_thread_id(run: StepRun) -> str:
    """The checkpoint thread of a step visit: the same for each attempt and redrive."""
    visit = f"agent|{run.scope}|{run.step_id}|{run.iteration}"
    return thread_id_for(run.execution_id, hashlib.sha256(visit.encode()).hexdigest()[:32])


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


class AgentRunner:
    """Runs agent steps with the services of their ``AgentStep``."""

    def __init__(self, services: AiServices) -> None:
        self.services = services

    async def execute(self, ctx: StepContext) -> Outcome:
        config: AgentConfig = ctx.config
        parked = waiting(ctx)  # an escalated answer still waiting for a person
        if parked is not None:
            return parked
        env = self.services.env(ctx.services)
        graph = build_agent_graph(self.services.saver(env))
        rounds = 1 + (config.guardrails.max_retries if config.guardrails else 0)
        limit = 2 * config.max_tool_calls + rounds * 3 * (config.max_repairs + 3) + 10
        run_config = RunnableConfig(
            configurable={"thread_id": agent_thread_id(ctx.run)}, recursion_limit=limit
        )
        recorded = await env.replay.load(ctx.run)
        snapshot = await graph.aget_state(run_config)
        if _redrive_forks(ctx.run, snapshot, recorded):
            # A redrive goes on from a copy of the checkpoint the failed node started
            # from, without that node's recorded outcome (a rejection, an expired
            # approval, an error): the call is proposed (and approved) again; the
            # turns and calls completed before it are kept, not asked again.
            await graph.aupdate_state(run_config, None, as_node="__copy__")
            slot = _fork_slot(ctx.run)
            await env.replay.save(ctx.run, slot, ctx.now.isoformat())
            recorded[slot] = ctx.now.isoformat()
            snapshot = await graph.aget_state(run_config)
        elif _redrive_asks_again(ctx.run, config, snapshot, recorded):
            # A redrive of an answer its guardrails failed (fail, fallback, a rejected
            # or unanswered escalation) asks the agent anew: the thread goes on from its
            # end as if the guard node had sent the failed verdicts back (onFail: retry),
            # one more answer, checked as the last one was; its earlier rounds are kept.
            last = list(snapshot.values["rounds"])[-1]
            feedback = {
                "messages": [HumanMessage(feedback_message(last))],
                "done": False,
                "repairs_left": config.max_repairs,
            }
            await graph.aupdate_state(run_config, feedback, as_node="guard")
            slot = _fork_slot(ctx.run)
            await env.replay.save(ctx.run, slot, ctx.now.isoformat())
            recorded[slot] = ctx.now.isoformat()
            snapshot = await graph.aget_state(run_config)
        values: dict[str, Any] = dict(snapshot.values or {})
        runs = await env.executions.list_runs(ctx.execution.id) if env.executions else []
        graph_input: Any = None
        pending = _interrupt(snapshot)
        if pending is not None:
            decision = ctx.run.state.get(DECISION_KEY)
            if not isinstance(decision, dict) or decision.get("event") != pending.get("event"):
                if ctx.now >= parse_time(str(pending["deadline"])):
                    raise StepFailed(
                        f"nobody approved or rejected the call of {pending['tool']!r} within "
                        f"{config.approval_timeout_seconds}s",
                        code="APPROVAL_TIMEOUT",
                        retryable=False,
                    )
                return await self._park(ctx, pending, values, None)  # still waiting
            graph_input = Command(resume=decision)
        elif not values:
            prompt = str(ctx.render(config.prompt))
            memory = _memory(runs, ctx.run, config.memory)
            messages: list[AnyMessage] = [
                SystemMessage(_system(ctx, config)),
                *memory,
                HumanMessage(prompt),
            ]
            graph_input = AgentState(
                messages=messages, repairs_left=config.max_repairs, entries=[], set_vars={}
            )
        session = await self._session(ctx, env, config, runs, values, recorded)
        ctx.run.input = {"prompt": _prompt(values, graph_input), "model": session.spec.model}
        ctx.run.state = {**ctx.run.state, PENDING_KEY: None, DECISION_KEY: None}
        if graph_input is not None or snapshot.next:
            try:
                await graph.ainvoke(graph_input, run_config, context=session, durability="sync")
            except BudgetExceeded as exceeded:
                _keep_usage(ctx, session.usage)
                if config.budget.on_exceeded == "pause":
                    state = {PAUSED_KEY: {"reason": exceeded.message, "at": ctx.now.isoformat()}}
                    return Park(until=ctx.now, pause=exceeded.message, state=state)
                raise
            except StepFailed:
                _keep_usage(ctx, session.usage)
                raise
            snapshot = await graph.aget_state(run_config)
            values = dict(snapshot.values or {})
        usage = Usage.from_dict(values.get("usage"))
        _keep_usage(ctx, usage)
        pending = _interrupt(snapshot)
        if pending is not None:
            return await self._park(ctx, pending, values, session)
        return await self._complete(ctx, config, session, values, usage)

    async def _park(
        self,
        ctx: StepContext,
        pending: dict[str, Any],
        values: dict[str, Any],
        session: AgentSession | None,
    ) -> Park:
        """Wait for the proposed call's approval (or rejection) event."""
        output = {"status": "awaitingApproval", "approval": pending}
        output.update(_entries_view(values))
        ctx.run.output, ctx.run.output_truncated = cap_output(output, OUTPUT_BYTES)
        if session is not None:
            await session.publish({"approval": pending})
        return Park(
            until=parse_time(str(pending["deadline"])),
            state={PENDING_KEY: pending, DECISION_KEY: None},
            signal=str(pending["event"]),
        )

    async def _session(
        self,
        ctx: StepContext,
        env: AiEnv,
        config: AgentConfig,
        runs: list[StepRun],
        values: dict[str, Any],
        recorded: dict[str, Any],
    ) -> AgentSession:
        spec = resolve_spec(config.model, env.settings)
        toolbox = ToolBox(ctx, env, config.llm_view())
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
        approved = bool(ctx.run.state.get(PAUSED_KEY))
        return AgentSession(
            env=env,
            ctx=ctx,
            spec=spec,
            model=model,
            recording=recording,
            recorded=recorded,
            guard=guard_for(config.budget, env.settings, before, approved),
            toolbox=toolbox,
            tools=tools,
            schema=config.output_schema,
            max_tool_calls=config.max_tool_calls,
            approval_tools=config.approval_tools(),
            on_reject=config.on_reject,
            approval_timeout_seconds=config.approval_timeout_seconds,
            usage=Usage.from_dict(values.get("usage")),
            guardrails=config.guardrails,
            max_repairs=config.max_repairs,
        )

    async def _complete(
        self,
        ctx: StepContext,
        config: AgentConfig,
        session: AgentSession,
        values: dict[str, Any],
        usage: Usage,
    ) -> Outcome:
        messages = list(values.get("messages") or [])
        final = messages[-1] if messages else AIMessage("")
        text = text_of(final.content)
        data = values.get("data")
        output: dict[str, Any] = {
            "text": text,
            "source": session.source,
            "recorded": session.source != "model",
            "model": session.spec.model,
            "turns": int(values.get("turns") or 0),
            "toolCalls": int(values.get("tool_calls") or 0),
            **_entries_view(values),
            "usage": {
                "step": usage.to_dict(),
                "execution": session.guard.execution_before.add(usage).to_dict(),
            },
        }
        if config.output_schema is not None:
            output["data"] = data
        if session.recording is not None:
            output["recording"] = session.recording.source
        if config.memory is not None:
            output["memory"] = {"key": config.memory.key}
            kept = [
                m
                for m in messages
                if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls)
            ]
            ctx.run.state[MEMORY_KEY] = {
                "key": config.memory.key,
                "messages": dump_messages(kept[-config.memory.max_messages :]),
            }
        set_vars = dict(values.get("set_vars") or {})
        if config.set_vars and isinstance(data, dict):
            set_vars.update(data)
        complete = Complete(output=output, set_vars=set_vars or None)
        rounds = list(values.get("rounds") or [])
        if config.guardrails is None or not rounds:
            return complete
        complete.output["evaluation"] = summary(rounds, config.guardrails)
        return await settle(ctx, config.guardrails, complete, session)


def _entries_view(values: dict[str, Any]) -> dict[str, Any]:
    """``entries`` for a run's output: the latest that fit in ``ENTRIES_BYTES`` (and
    ``entriesOmitted``, how many older ones did not; the checkpoints keep them all)."""
    entries = list(values.get("entries") or [])
    kept: list[dict[str, Any]] = []
    used = 0
    for entry in reversed(entries):
        used += len(json.dumps(entry, default=str))
        if used > ENTRIES_BYTES:
            break
        kept.append(entry)
    view: dict[str, Any] = {"entries": kept[::-1]}
    if len(kept) < len(entries):
        view["entriesOmitted"] = len(entries) - len(kept)
    return view


def _fork_slot(run: StepRun) -> str:
    return f"fork:{run.generation}"


def _redrive_forks(run: StepRun, snapshot: Any, recorded: dict[str, Any]) -> bool:
    """Whether this delivery is the first of a redrive (a later generation than the
    visit's first, not forked yet: a redelivery of the same generation never asks
    again) and the thread stopped on a node that failed or waits for an approval that
    can no longer come (the execution failed: a rejection, a timeout)."""
    if run.generation <= 0 or _fork_slot(run) in recorded or not snapshot.next:
        return False
    return bool(snapshot.interrupts) or any(task.error for task in snapshot.tasks)


def _redrive_asks_again(
    run: StepRun, config: AgentConfig, snapshot: Any, recorded: dict[str, Any]
) -> bool:
    """Whether this delivery is the first of a redrive (as for ``_redrive_forks``) of a
    visit whose thread ended on an answer its guardrails failed (the step failed
    GUARDRAIL_FAILED or GUARDRAIL_TIMEOUT: a redrive runs failed steps only)."""
    if run.generation <= 0 or _fork_slot(run) in recorded or snapshot.next:
        return False
    rounds = list((snapshot.values or {}).get("rounds") or [])
    if config.guardrails is None or not rounds:
        return False
    return not all(verdict.get("passed") for verdict in rounds[-1])


def _interrupt(snapshot: Any) -> dict[str, Any] | None:
    """The proposed call the thread is interrupted on, if any."""
    for item in snapshot.interrupts or ():
        if isinstance(item.value, dict) and "event" in item.value:
            return dict(item.value)
    return None


def _prompt(values: dict[str, Any], graph_input: Any) -> str:
    source = graph_input if isinstance(graph_input, dict) else values
    for message in source.get("messages") or []:
        if isinstance(message, HumanMessage):
            return text_of(message.content)[:2000]
    return ""


def _keep_usage(ctx: StepContext, usage: Usage) -> None:
    if usage.calls:
        ctx.run.state = {**ctx.run.state, USAGE_KEY: usage.to_dict()}
