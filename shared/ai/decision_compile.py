"""Save-time compilation of decision trees: every problem as an ``Issue`` with a pointer.

Codes: DECISION_UNKNOWN_ROOT, DECISION_DUPLICATE_NODE, DECISION_RESERVED_NODE_ID,
DECISION_AMBIGUOUS_TARGET, DECISION_UNKNOWN_TARGET, DECISION_LEAF_NOT_IN_NEXT_STEPS,
DECISION_CYCLE, DECISION_UNREACHABLE_NODE, DECISION_MISSING_FALLBACK,
DECISION_UNKNOWN_FALLBACK, DECISION_TOO_FEW_BRANCHES, DECISION_COMPILE_FAILED, and
the expression codes (EXPRESSION_SYNTAX, EXPRESSION_UNKNOWN_VARIABLE...) of CEL
conditions, lookup keys and prompt templates.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from shared.ai.decision_config import (
    DECISION_ROOTS,
    HISTORY,
    LEAF_PREFIX,
    AiNode,
    ConditionNode,
    DecisionConfig,
    HistoryNode,
    LeafNode,
    LookupNode,
    node_refs,
)
from shared.errors import Issue
from shared.expressions import check_template, compile_expression

if TYPE_CHECKING:  # LangGraph loads on the first compile, not with the service
    from langgraph.graph.state import CompiledStateGraph

    Graph = CompiledStateGraph[Any, Any, Any, Any]
_GRAPHS: OrderedDict[int, tuple[DecisionConfig, Graph]] = OrderedDict()
_GRAPH_CACHE = 512


def check_decision(config: DecisionConfig, next_steps: list[str], path: str) -> list[Issue]:
    """Every problem of a decision tree; ``path`` points at the step's ``config``."""
    issues: list[Issue] = []
    index: dict[str, int] = {}
    for i, node in enumerate(config.nodes):
        at = f"{path}/nodes/{i}"
        if node.id in index:
            issues.append(_issue("DUPLICATE_NODE", f"node id {node.id!r} is used twice", at, "id"))
            continue
        index[node.id] = i
        if node.id.startswith("__") or node.id.startswith(LEAF_PREFIX):
            issues.append(
                _issue(
                    "RESERVED_NODE_ID", f"node ids may not start with __ or {LEAF_PREFIX}", at, "id"
                )
            )
        if node.id in next_steps:
            issues.append(
                _issue(
                    "AMBIGUOUS_TARGET",
                    f"node id {node.id!r} is also a next step; rename the node",
                    at,
                    "id",
                )
            )
        issues.extend(_check_node(node, next_steps, at))
    root = config.root_id()
    if root not in index:
        issues.append(
            Issue("DECISION_UNKNOWN_ROOT", f"root {root!r} is not a node", f"{path}/root")
        )
        return issues
    for i, node in enumerate(config.nodes):
        for target, suffix in node_refs(node):
            if target not in index and target not in next_steps:
                issues.append(
                    _issue(
                        "UNKNOWN_TARGET",
                        f"{target!r} is neither a node nor one of nextSteps {next_steps}",
                        f"{path}/nodes/{i}",
                        suffix,
                    )
                )
    if not issues:
        issues.extend(_check_shape(config, index, path))
    if not issues:
        try:
            compiled_graph(config)
        except Exception as exc:  # LangGraph refuses a graph we failed to anticipate
            issues.append(Issue("DECISION_COMPILE_FAILED", str(exc)[:300], f"{path}/nodes"))
    return issues


def _issue(code: str, message: str, at: str, suffix: str) -> Issue:
    return Issue(f"DECISION_{code}", message, f"{at}/{suffix}")


def _check_node(node: Any, next_steps: list[str], at: str) -> list[Issue]:
    issues: list[Issue] = []
    if isinstance(node, ConditionNode):
        issues += compile_expression(node.when, f"{at}/when", DECISION_ROOTS)[1]
    elif isinstance(node, LookupNode):
        issues += compile_expression(node.key, f"{at}/key", DECISION_ROOTS)[1]
    elif isinstance(node, LeafNode) and node.next not in next_steps:
        issues.append(
            _issue(
                "LEAF_NOT_IN_NEXT_STEPS",
                f"leaf {node.next!r} is not one of nextSteps {next_steps}",
                at,
                "next",
            )
        )
    elif isinstance(node, AiNode):
        issues += check_template(node.prompt, f"{at}/prompt", DECISION_ROOTS)
        if node.fallback is None:
            issues.append(
                _issue(
                    "MISSING_FALLBACK",
                    "an ai node needs a fallback: one of its branch labels, or 'history'",
                    at,
                    "fallback",
                )
            )
        elif node.fallback != HISTORY and node.fallback not in node.branches:
            issues.append(
                _issue(
                    "UNKNOWN_FALLBACK",
                    f"fallback {node.fallback!r} is not 'history' nor one of the branch labels "
                    f"{sorted(node.branches)}",
                    at,
                    "fallback",
                )
            )
    if isinstance(node, (AiNode, HistoryNode)) and len(node.branches) < 2:
        issues.append(
            _issue("TOO_FEW_BRANCHES", "a choice needs at least two branches", at, "branches")
        )
    return issues


def _check_shape(config: DecisionConfig, index: dict[str, int], path: str) -> list[Issue]:
    """Cycles (a reference back to a node on the current path) and unreachable nodes."""
    issues: list[Issue] = []
    state: dict[str, str] = {}  # node id -> "open" | "done"
    nodes = {node.id: node for node in config.nodes}

    def visit(node_id: str) -> None:
        state[node_id] = "open"
        for target, suffix in node_refs(nodes[node_id]):
            if target not in nodes:
                continue
            if state.get(target) == "open":
                issues.append(
                    _issue(
                        "CYCLE",
                        f"{node_id!r} leads back to {target!r}: a decision tree has no cycles",
                        f"{path}/nodes/{index[node_id]}",
                        suffix,
                    )
                )
            elif target not in state:
                visit(target)
        state[node_id] = "done"

    visit(config.root_id())
    for node in config.nodes:
        if node.id not in state:
            issues.append(
                Issue(
                    "DECISION_UNREACHABLE_NODE",
                    f"node {node.id!r} is not reachable from the root {config.root_id()!r}",
                    f"{path}/nodes/{index[node.id]}",
                )
            )
    return issues


def compiled_graph(config: DecisionConfig) -> Graph:
    """The compiled graph of a (checked) config, cached per config object."""
    key = id(config)
    found = _GRAPHS.get(key)
    if found is not None and found[0] is config:
        _GRAPHS.move_to_end(key)
        return found[1]
    from shared.ai.decision_graph import build_graph  # LangGraph loads here, lazily

    graph = build_graph(config)
    _GRAPHS[key] = (config, graph)  # holding the config keeps its id from being reused
    if len(_GRAPHS) > _GRAPH_CACHE:
        _GRAPHS.popitem(last=False)
    return graph


def has_io(config: DecisionConfig) -> bool:
    """Whether the tree asks a model or the history (else it runs inline)."""
    return any(isinstance(node, (AiNode, HistoryNode)) for node in config.nodes)
