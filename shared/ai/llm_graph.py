"""The llm step's conversation loop as a LangGraph ``StateGraph``.

``build_graph()`` documents it::

    START -> model -+-> tools -> model         (the answer asks for tool calls)
                    +-> answer -+-> END         (the answer is acceptable)
                                +-> model       (a repair: the answer missed the schema)

The ``LlmSession`` reaches the nodes through the runtime context. No checkpointer:
the loop runs inside one step run; what must survive (model turns, tool results) is
recorded by the session as it goes.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from shared.ai.llm_session import LlmSession
from shared.errors import StepFailed


class LlmState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    repairs_left: int
    data: Any
    """The accepted answer (structured when the step has an output schema)."""
    done: bool


def _last(state: LlmState) -> AIMessage:
    message = state["messages"][-1]
    assert isinstance(message, AIMessage)
    return message


async def model_node(state: LlmState, runtime: Runtime[LlmSession]) -> dict[str, Any]:
    message = await runtime.context.turn(list(state["messages"]))
    return {"messages": [message]}


def after_model(state: LlmState) -> str:
    return "tools" if _last(state).tool_calls else "answer"


async def tools_node(state: LlmState, runtime: Runtime[LlmSession]) -> dict[str, Any]:
    return {"messages": await runtime.context.run_tools(_last(state))}


def answer_node(state: LlmState, runtime: Runtime[LlmSession]) -> dict[str, Any]:
    data, problem = runtime.context.answer(_last(state))
    if problem is None:
        return {"data": data, "done": True}
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


def after_answer(state: LlmState) -> str:
    return END if state.get("done") else "model"


_GRAPH: CompiledStateGraph[LlmState, LlmSession, LlmState, LlmState] | None = None


def build_graph() -> CompiledStateGraph[LlmState, LlmSession, LlmState, LlmState]:
    """The conversation loop (compiled once: it is the same for every llm step)."""
    global _GRAPH
    if _GRAPH is None:
        graph = StateGraph(LlmState, context_schema=LlmSession)
        graph.add_node("model", model_node)
        graph.add_node("tools", tools_node)
        graph.add_node("answer", answer_node)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", after_model, {"tools": "tools", "answer": "answer"})
        graph.add_edge("tools", "model")
        graph.add_conditional_edges("answer", after_answer, {END: END, "model": "model"})
        _GRAPH = graph.compile()
    return _GRAPH
