"""A decision tree as a LangGraph ``StateGraph``: one graph node per inner tree node.

``build_graph(config)`` documents the graph: START -> the root node; a
condition, lookup, AI or history node sets ``next`` (the graph node to run after
it) and appends one entry to ``path``; a conditional edge follows ``next``; a leaf
is the outcome: the node that chooses a leaf (an explicit leaf node, or one of the
step's ``nextSteps`` named directly) records it in ``path``, sets ``outcome`` and
routes to END itself, so reaching the outcome costs no extra graph step.

Dependencies reach the nodes through the runtime context (``DecisionContext``): the
expression environment and, for AI and history nodes, the ``Router`` that asks the
model or the history. The graph is compiled once per config, with no checkpointer:
it runs in-process inside one step run, and the engine records its result.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from shared.ai.decision_config import (
    DECISION_ROOTS,
    LEAF_PREFIX,
    AiNode,
    ConditionNode,
    DecisionConfig,
    HistoryNode,
    LeafNode,
    LookupNode,
)
from shared.errors import StepFailed
from shared.expressions import expression as compile_expr
from shared.expressions import render


class DecisionState(TypedDict, total=False):
    """What flows through a decision graph."""

    path: Annotated[list[dict[str, Any]], operator.add]
    """One entry per node visited, in order."""
    facts: dict[str, Any]
    """Values found by lookup nodes (``decision.<name>`` in expressions)."""
    next: str
    """The graph node to run next."""
    outcome: str
    """The chosen next step (set by a leaf)."""


class Router(Protocol):
    """Chooses a branch at AI and history nodes (I/O: the model, the store)."""

    async def ai(self, node: AiNode, prompt: str) -> dict[str, Any]:
        """The path entry of an AI node: ``label`` and how it was chosen."""

    async def history(self, node: HistoryNode) -> dict[str, Any]:
        """The path entry of a history node."""


@dataclass
class DecisionContext:
    """Runtime context of a decision graph run."""

    env: dict[str, Any]
    """The step's expression environment (``vars``, ``input``, ``prev``...)."""
    router: Router | None = None


@dataclass(frozen=True)
class Routes:
    """Where references lead: inner nodes run next; a leaf (an explicit leaf node, or a
    next step named directly) ends the graph from the node that chose it, so reaching
    an outcome costs no extra graph step."""

    nodes: frozenset[str]
    """Ids of the inner (non-leaf) nodes."""
    leaves: dict[str, str]
    """Explicit leaf node id -> its next step."""

    def go(self, ref: str, entry: dict[str, Any], **update: Any) -> dict[str, Any]:
        """The state update of a node that recorded ``entry`` and chose ``ref``."""
        if ref in self.nodes:
            return {"path": [entry], "next": ref, **update}
        step_id, leaf = (self.leaves[ref], ref) if ref in self.leaves else (ref, LEAF_PREFIX + ref)
        end = {"node": leaf, "type": "leaf", "next": step_id}
        return {"path": [entry, end], "next": END, "outcome": step_id, **update}


def _env(state: DecisionState, context: DecisionContext) -> dict[str, Any]:
    return {**context.env, "decision": state.get("facts") or {}}


def condition_node(
    state: DecisionState, runtime: Runtime[DecisionContext], *, node: ConditionNode, routes: Routes
) -> dict[str, Any]:
    value = compile_expr(node.when, DECISION_ROOTS).evaluate(_env(state, runtime.context))
    if not isinstance(value, bool):
        raise StepFailed(
            f"decision node {node.id!r}: condition returned {type(value).__name__}, not bool",
            code="EXPRESSION_TYPE",
            retryable=False,
        )
    entry = {"node": node.id, "type": "condition", "result": value}
    return routes.go(node.then if value else node.else_, entry)


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lookup_node(
    state: DecisionState, runtime: Runtime[DecisionContext], *, node: LookupNode, routes: Routes
) -> dict[str, Any]:
    key = _key_text(compile_expr(node.key, DECISION_ROOTS).evaluate(_env(state, runtime.context)))
    hit = key in node.table
    if not hit and node.default is None:
        raise StepFailed(
            f"decision node {node.id!r}: key {key!r} is not in the table and there is no default",
            code="DECISION_LOOKUP_MISS",
            retryable=False,
        )
    value = node.table[key] if hit else node.default
    entry = {"node": node.id, "type": "lookup", "key": key, "value": value, "hit": hit}
    facts = {**(state.get("facts") or {}), node.as_: value}
    return routes.go(node.next, entry, facts=facts)


def _router(runtime: Runtime[DecisionContext], node_id: str) -> Router:
    if runtime.context.router is None:  # pragma: no cover - the step always gives one
        raise StepFailed(f"decision node {node_id!r} needs a router", code="INTERNAL")
    return runtime.context.router


async def ai_node(
    state: DecisionState, runtime: Runtime[DecisionContext], *, node: AiNode, routes: Routes
) -> dict[str, Any]:
    prompt = render(node.prompt, _env(state, runtime.context), DECISION_ROOTS)
    entry = await _router(runtime, node.id).ai(node, str(prompt))
    return routes.go(node.branches[entry["label"]].next, entry)


async def history_node(
    state: DecisionState, runtime: Runtime[DecisionContext], *, node: HistoryNode, routes: Routes
) -> dict[str, Any]:
    entry = await _router(runtime, node.id).history(node)
    return routes.go(node.branches[entry["label"]].next, entry)


def leaf_node(state: DecisionState, *, node: LeafNode) -> dict[str, Any]:
    """Only a root leaf runs as a graph node; other leaves end the node that chose them."""
    return {"path": [{"node": node.id, "type": "leaf", "next": node.next}], "outcome": node.next}


def follow(state: DecisionState) -> str:
    """The conditional edge of every inner node: go where the node said."""
    return state["next"]


NodeFn = Callable[..., dict[str, Any] | Awaitable[dict[str, Any]]]


def build_graph(
    config: DecisionConfig,
) -> CompiledStateGraph[DecisionState, DecisionContext, DecisionState, DecisionState]:
    """Compile the tree (already checked) into a LangGraph graph without a checkpointer."""
    leaves = {node.id: node.next for node in config.nodes if isinstance(node, LeafNode)}
    routes = Routes(frozenset(n.id for n in config.nodes if n.id not in leaves), leaves)
    graph = StateGraph(DecisionState, context_schema=DecisionContext)
    root = config.root_id()
    for node in config.nodes:
        function: NodeFn
        if isinstance(node, LeafNode):
            if node.id == root:
                graph.add_node(node.id, partial(leaf_node, node=node))
                graph.add_edge(node.id, END)
            continue
        if isinstance(node, ConditionNode):
            function = partial(condition_node, node=node, routes=routes)
            refs = [node.then, node.else_]
        elif isinstance(node, LookupNode):
            function = partial(lookup_node, node=node, routes=routes)
            refs = [node.next]
        elif isinstance(node, AiNode):
            function = partial(ai_node, node=node, routes=routes)
            refs = [option.next for option in node.branches.values()]
        else:
            function = partial(history_node, node=node, routes=routes)
            refs = [option.next for option in node.branches.values()]
        graph.add_node(node.id, function)
        targets = sorted({ref if ref in routes.nodes else END for ref in refs})
        graph.add_conditional_edges(node.id, follow, {t: t for t in targets})
    graph.add_edge(START, root)
    return graph.compile()
