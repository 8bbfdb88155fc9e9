"""Step-level ``concurrency`` and ``rateLimit`` against hostile definitions: keys cannot
read outside ``input``/``vars``/``trigger`` (no secrets, no step outputs, no ``prev``),
code-looking keys never run, and limits, periods and key lengths are bounded at save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.engine.step_limits import STEP_LIMIT_ROOTS
from shared.engine.validation import validate_definition
from shared.errors import DefinitionInvalid, StepFailed
from shared.expressions import expression
from shared.steps import default_registry

REGISTRY = default_registry()
LIMITS = {"concurrency": {"limit": 2}, "rateLimit": {"limit": 2, "period": 10}}


def _step(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "hostile-step-limits",
        "steps": [
            {"id": "first", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["a"]},
            {"id": "a", "type": "transform", "config": {}, name: {**LIMITS[name], **fields}},
        ],
    }


def _issues(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(raw, REGISTRY)
    return [(issue.code, issue.path) for issue in caught.value.issues]


@pytest.mark.parametrize("name", list(LIMITS))
@pytest.mark.parametrize(
    "key",
    ["secrets.token", "steps.a.output", "env.HOME", "prev.body", "execution.id", "item", "request"],
)
def test_a_key_reading_outside_its_roots_is_refused_at_save(name: str, key: str) -> None:
    found = _issues(_step(name, key=key))
    assert ("EXPRESSION_UNKNOWN_VARIABLE", f"/steps/1/{name}/key") in found, found


@pytest.mark.parametrize("name", list(LIMITS))
@pytest.mark.parametrize(
    "template",
    ["__import__('os').system('touch {canary}')", "open('{canary}', 'w')", "input.__class__"],
)
def test_a_key_that_looks_like_code_never_runs_it(name: str, template: str, tmp_path: Path) -> None:
    """CEL, not Python: refused at save, or (when CEL parses it) failing when evaluated
    over what a key may read, with nothing run."""
    canary = tmp_path / "ran"
    key = template.format(canary=canary)
    try:
        validate_definition(_step(name, key=key), REGISTRY)
    except DefinitionInvalid as refused:
        assert any(i.path == f"/steps/1/{name}/key" for i in refused.issues)
    else:
        env = {"input": {"a": 1}, "vars": {}, "trigger": {}}
        with pytest.raises(StepFailed):
            expression(key, STEP_LIMIT_ROOTS).evaluate(env)
    assert not canary.exists()


@pytest.mark.parametrize(
    ("name", "fields", "path"),
    [
        ("concurrency", {"limit": 10_001}, "/steps/1/concurrency/limit"),
        ("concurrency", {"limit": 10**12}, "/steps/1/concurrency/limit"),
        ("concurrency", {"limit": -1}, "/steps/1/concurrency/limit"),
        ("rateLimit", {"limit": 1001}, "/steps/1/rateLimit/limit"),
        ("rateLimit", {"period": 0}, "/steps/1/rateLimit/period"),
        ("rateLimit", {"period": "9999d"}, "/steps/1/rateLimit/period"),
        ("concurrency", {"key": "input." + "x" * 2000}, "/steps/1/concurrency/key"),
        ("concurrency", {"surprise": True}, "/steps/1/concurrency/surprise"),
    ],
)
def test_huge_or_odd_limits_are_refused_at_save(
    name: str, fields: dict[str, Any], path: str
) -> None:
    found = _issues(_step(name, **fields))
    assert any(p == path for _, p in found), found


def test_the_allowed_roots_are_accepted() -> None:
    raw = _step("concurrency", key="input.customer + ':' + string(vars.x) + trigger.type")
    definition = validate_definition(raw, REGISTRY)
    assert definition.steps[1].concurrency is not None
