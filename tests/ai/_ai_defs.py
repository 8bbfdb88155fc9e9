"""Workflow definitions of the AI tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

MakeHarness = Callable[..., Awaitable[Any]]
"""``await make_harness(model=None, *, sqlite=False, **settings)`` (the fixture)."""

QUEUES = ["billing_queue", "tech_queue", "account_queue"]


def queue_steps(names: list[str]) -> list[dict[str, Any]]:
    return [{"id": n, "type": "transform", "config": {"set": {"queue": n}}} for n in names]


def ai_node(**extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "classify",
        "type": "ai",
        "prompt": "Ticket: ${vars.text}",
        "branches": {
            "billing": {"next": "billing_queue", "description": "money"},
            "technical": "tech_queue",
            "account": "account_queue",
        },
        "fallback": "account",
    }
    node.update(extra)
    return node


def triage(
    *nodes: dict[str, Any], next_steps: list[str] | None = None, **step: Any
) -> dict[str, Any]:
    """A decision step ``d`` over ``nodes`` followed by one transform per next step."""
    targets = next_steps or QUEUES
    return {
        "name": step.pop("name", "triage"),
        "steps": [
            {
                "id": "d",
                "type": "decision",
                "config": {"nodes": list(nodes)},
                "nextSteps": targets,
                **step,
            },
            *queue_steps(targets),
        ],
    }


def tree() -> list[dict[str, Any]]:
    """Conditions and a lookup, no I/O."""
    return [
        {
            "id": "vip",
            "type": "condition",
            "when": "vars.tier == 'gold'",
            "then": "sla",
            "else": "account_queue",
        },
        {
            "id": "sla",
            "type": "lookup",
            "key": "vars.region",
            "table": {"eu": 4, "us": 8},
            "default": 24,
            "as": "hours",
            "next": "fast",
        },
        {
            "id": "fast",
            "type": "condition",
            "when": "decision.hours < 6",
            "then": "billing_queue",
            "else": "tech_queue",
        },
    ]
