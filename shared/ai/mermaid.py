"""Mermaid flowcharts of decision trees (``GET .../steps/{stepId}/graph``).

Shapes: condition ``{...}`` with ``true``/``false`` edges, lookup ``[/.../]``, AI node
``{{...}}`` with one edge per label and a dotted ``fallback`` edge, history node
``((...))``, outcome (a next step) ``[[...]]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.ai.decision_config import (
    HISTORY,
    AiNode,
    ConditionNode,
    DecisionConfig,
    HistoryNode,
    LeafNode,
    LookupNode,
    parse_decision_config,
)

MAX_LABEL = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _id(name: str) -> str:
    return "n_" + _UNSAFE.sub("_", name)


def _step_id(name: str) -> str:
    return "s_" + _UNSAFE.sub("_", name)


def _text(value: str) -> str:
    value = " ".join(value.split())
    if len(value) > MAX_LABEL:
        value = value[: MAX_LABEL - 1] + "…"
    return '"' + value.replace('"', "#quot;").replace("`", "#96;") + '"'


def render_mermaid(config: DecisionConfig | Mapping[str, Any], step_id: str = "decision") -> str:
    """A Mermaid ``flowchart`` of a decision step's tree (a config or its raw JSON)."""
    if not isinstance(config, DecisionConfig):
        config = parse_decision_config(config)
    ids = {node.id for node in config.nodes}
    lines = [
        "flowchart TD",
        f"  start([{_text('decision ' + step_id)}]) --> {_id(config.root_id())}",
    ]
    outcomes: set[str] = set()

    def target(ref: str) -> str:
        if ref in ids:
            return _id(ref)
        outcomes.add(ref)
        return _step_id(ref)

    for node in config.nodes:
        me = _id(node.id)
        if isinstance(node, ConditionNode):
            lines.append(f"  {me}{{{_text(node.when)}}}")
            lines.append(f"  {me} -->|true| {target(node.then)}")
            lines.append(f"  {me} -->|false| {target(node.else_)}")
        elif isinstance(node, LookupNode):
            lines.append(f"  {me}[/{_text(f'lookup {node.key} as {node.as_}')}/]")
            lines.append(f"  {me} --> {target(node.next)}")
        elif isinstance(node, (AiNode, HistoryNode)):
            if isinstance(node, AiNode):
                lines.append(f"  {me}{{{{{_text('AI: ' + node.prompt)}}}}}")
            else:
                lines.append(f"  {me}(({_text('history router')}))")
            for label, option in node.branches.items():
                lines.append(f"  {me} -->|{_text(label)}| {target(option.next)}")
            if isinstance(node, AiNode) and node.fallback == HISTORY:
                lines.append(f"  {me}_h(({_text('history router')}))")
                lines.append(f"  {me} -.->|fallback| {me}_h")
            elif isinstance(node, AiNode) and node.fallback in node.branches:
                fallback = node.branches[node.fallback].next
                lines.append(
                    f"  {me} -.->|{_text('fallback: ' + node.fallback)}| {target(fallback)}"
                )
        elif isinstance(node, LeafNode):
            lines.append(f"  {me}([{_text(node.id)}]) --> {target(node.next)}")
    for ref in sorted(outcomes):
        lines.append(f"  {_step_id(ref)}[[{_text('next: ' + ref)}]]")
    return "\n".join(lines) + "\n"
