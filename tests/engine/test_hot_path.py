"""Shortcuts on the step path give what the general path gives."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from shared.engine import policy
from shared.engine.runs import make_run
from shared.engine.steps import StepRegistry
from shared.engine.validation import validate_definition
from shared.models import StepRun, WorkflowExecution
from shared.steps import register_builtins


def _slow_cap(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """cap_output without its scalar shortcut."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    if len(text.encode()) <= max_bytes:
        return value, False
    preview = text.encode()[: max(0, max_bytes - 200)].decode(errors="ignore")
    return {"truncated": True, "bytes": len(text.encode()), "preview": preview}, True


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63,
        2**64 + 1,
        1.5,
        math.inf,
        "",
        "é" * 10,
        "x" * 43_690,
        "\u0001" * 43_690,
        "\u0001" * 43_691,
        "y" * 300_000,
        {"a": 1},
        [1, 2],
    ],
)
@pytest.mark.parametrize("cap", [4, 40, 256 * 1024])
def test_cap_output_shortcut_agrees_with_encoding(value: Any, cap: int) -> None:
    assert policy.cap_output(value, cap) == _slow_cap(value, cap)


def test_make_run_builds_what_validation_would() -> None:
    definition = validate_definition(
        {"name": "w", "steps": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        register_builtins(StepRegistry()),
    )
    execution = WorkflowExecution.model_validate(
        {"id": "e1", "workflowId": "w1", "workflowVersion": 1, "status": "running"}
    )
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    context = {"prev": {"k": [1]}}
    visits = {"a": 1}
    run = make_run(
        definition,
        execution,
        "a",
        scope="",
        context=context,
        visits=visits,
        generation=0,
        predecessor="p",
        due_at=now,
        attempt=1,
        now=now,
    )
    again = StepRun.model_validate(run.model_dump())
    assert again == run and again.model_dump_json() == run.model_dump_json()
    assert run.context is not context and run.visits is not visits
    assert (
        run.state == {}
        and run.state
        is not make_run(
            definition,
            execution,
            "a",
            scope="",
            context={},
            visits={},
            generation=0,
            predecessor=None,
            due_at=now,
            attempt=1,
            now=now,
        ).state
    )
