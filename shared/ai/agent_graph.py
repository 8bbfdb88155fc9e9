"""The agent step's tool-calling loop as a LangGraph ``StateGraph`` with a checkpointer.

``build_agent_graph(saver)`` documents it::

    START -> model -+-> tool -+-> tool           (another call of the same answer)
                    |         +-> model          (every call of the answer is done)
                    +-> answer -+-> END          (the answer is acceptable)
                                +-> model        (a repair: the answer missed the schema)
                                +-> guard -+-> END    (checked: passed or what follows)
                                           +-> model  (guardrails retry with feedback)

One tool call per ``tool`` super-step: each model call and each tool call ends in a
checkpoint of its own, so a run resumed after a crash goes on after the last one that
completed. A call of a tool that ``requiresApproval`` first calls ``interrupt()``
with the proposed call; the run resumes with ``Command(resume=<decision>)``, and
the node (re-run from its start, as LangGraph does) gets the decision back. With
``guardrails``, an acceptable answer goes to the ``guard`` node, whose verdicts are
kept in the state (``rounds``, one list per answer checked); a failure under
``onFail: retry`` tells the model as a new user message on the same thread.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from shared.ai.accounting import Usage
from shared.ai.agent_session import AgentSession
from shared.ai.guardrails_run import feedback_message
from shared.errors import StepFailed


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    entries: Annotated[list[dict[str, Any]], operator.add]
    """Sub-entries: one per model call and tool call."""
    turns: int
    tool_calls: int
    usage: dict[str, Any]
    """The step run's model usage so far (``Usage.to_dict``)."""
    set_vars: Annotated[dict[str, Any], _merge]
    repairs_left: int
    data: Any
    done: bool
    checking: bool
    """The accepted answer waits for its guardrails (the ``guard`` node)."""
    rounds: Annotated[list[list[dict[str, Any]]], operator.add]
    """The guardrails' verdicts, one list per answer checked."""


def pending_call(state: AgentState) -> dict[str, Any] | None:
    """The first call of the latest model answer that has no tool result yet."""
    answered: set[str] = set()
    for message in reversed(state.get("messages", [])):
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
        elif isinstance(message, AIMessage):
            for call in message.tool_calls:
                if str(call.get("id")) not in answered:
                    return dict(call)
            return None
    return None


async def model_node(state: AgentState, runtime: Runtime[AgentSession]) -> dict[str, Any]:
    turns = state.get("turns", 0)
    message, entry, usage = await runtime.context.turn(
        list(state["messages"]),
        turns,
        Usage.from_dict(state.get("usage")),
        len(state.get("entries", [])),
    )
    return {"messages": [message], "entries": [entry], "turns": turns + 1, "usage": usage.to_dict()}


def after_model(state: AgentState) -> str:
    return "tool" if pending_call(state) is not None else "answer"


def decision_of(value: Any) -> dict[str, Any]:
    """A resume value as ``{approved, args, by, reason}`` (``AgentRunner`` checked it)."""
    value = value if isinstance(value, dict) else {}
    return {
        "approved": bool(value.get("approved")),
        "args": value.get("args") if isinstance(value.get("args"), dict) else None,
        "by": str(value.get("by") or "a reviewer")[:200],
        "reason": str(value.get("reason") or "no reason given")[:1000],
    }


async def tool_node(state: AgentState, runtime: Runtime[AgentSession]) -> dict[str, Any]:
    session = runtime.context
    call = pending_call(state)
    assert call is not None
    count = state.get("tool_calls", 0)
    if count >= session.max_tool_calls:
        raise StepFailed(
            f"the model asked for more than maxToolCalls={session.max_tool_calls} tool calls",
            code="TOO_MANY_TOOL_CALLS",
            retryable=False,
        )
    name, call_id = str(call["name"]), str(call.get("id"))
    args: dict[str, Any] = dict(call.get("args") or {})
    approval: dict[str, Any] | None = None
    if name in session.approval_tools:
        proposal = session.proposal(call)
        decision = decision_of(interrupt(proposal))
        approval = {k: v for k, v in decision.items() if k != "args"}
        if decision["args"] is not None:
            approval["editedArgs"] = True
            approval["proposedArgs"] = args
            args = decision["args"]
    started = time.monotonic()
    set_vars: dict[str, Any] = {}
    if approval is not None and not approval["approved"]:
        if session.on_reject == "fail":
            raise StepFailed(
                f"the call of {name!r} was rejected by {approval['by']}: {approval['reason']}",
                code="TOOL_CALL_REJECTED",
                retryable=False,
                details={"tool": name, "by": approval["by"], "reason": approval["reason"]},
            )
        content = f"rejected by {approval['by']}: {approval['reason']}"
    else:
        content, set_vars = await session.run_tool(name, args)
    index = len(state.get("entries", []))
    entry = session.tool_entry(index, name, args, content, started, approval)
    await session.publish({"entry": entry})
    return {
        "messages": [ToolMessage(content=content, tool_call_id=call_id, name=name)],
        "entries": [entry],
        "tool_calls": count + 1,
        "set_vars": set_vars,
    }


def after_tool(state: AgentState) -> str:
    return "tool" if pending_call(state) is not None else "model"


def answer_node(state: AgentState, runtime: Runtime[AgentSession]) -> dict[str, Any]:
    message = state["messages"][-1]
    assert isinstance(message, AIMessage)
    data, problem = runtime.context.answer(message)
    if problem is None:
        return {"data": data, "done": True, "checking": runtime.context.guardrails is not None}
    left = state.get("repairs_left", 0)
    if left <= 0:
        raise StepFailed(
            f"the model's answer does not match outputSchema: {problem}",
            code="LLM_OUTPUT_INVALID",
            retryable=False,
        )
    repair = HumanMessage(
        f"Your answer does not match the required JSON schema ({problem}). "
        "Answer again with the JSON object only."
    )
    return {"messages": [repair], "repairs_left": left - 1}


def after_answer(state: AgentState) -> str:
    if not state.get("done"):
        return "model"
    return "guard" if state.get("checking") else END


async def guard_node(state: AgentState, runtime: Runtime[AgentSession]) -> dict[str, Any]:
    """Check the accepted answer; under ``onFail: retry`` (retries left) a failure goes
    back to the model with the failed verdicts as a new user message."""
    session = runtime.context
    guardrails = session.guardrails
    if guardrails is None:  # the config lost its guardrails: nothing to check
        return {"checking": False}
    rounds = state.get("rounds", [])
    verdicts = await session.evaluate(
        list(state["messages"]),
        state.get("data"),
        len(rounds),
        Usage.from_dict(state.get("usage")),
    )
    update: dict[str, Any] = {
        "rounds": [verdicts],
        "checking": False,
        "usage": session.usage.to_dict(),
    }
    failed = not all(v["passed"] for v in verdicts)
    if failed and guardrails.on_fail == "retry" and len(rounds) < guardrails.max_retries:
        update["messages"] = [HumanMessage(feedback_message(verdicts))]
        update["done"] = False
        update["repairs_left"] = session.max_repairs
    return update


def after_guard(state: AgentState) -> str:
    return END if state.get("done") else "model"


AgentGraph = CompiledStateGraph[AgentState, AgentSession, AgentState, AgentState]


def build_agent_graph(saver: BaseCheckpointSaver[Any]) -> AgentGraph:
    """The agent loop compiled with ``saver`` (the runtime's ``StoreCheckpointSaver``)."""
    graph = StateGraph(AgentState, context_schema=AgentSession)
    graph.add_node("model", model_node)
    graph.add_node("tool", tool_node)
    graph.add_node("answer", answer_node)
    graph.add_node("guard", guard_node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", after_model, {"tool": "tool", "answer": "answer"})
    graph.add_conditional_edges("tool", after_tool, {"tool": "tool", "model": "model"})
    graph.add_conditional_edges(
        "answer", after_answer, {END: END, "model": "model", "guard": "guard"}
    )
    graph.add_conditional_edges("guard", after_guard, {END: END, "model": "model"})
    return graph.compile(checkpointer=saver)
