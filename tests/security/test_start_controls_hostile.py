"""Start controls (singleton, rateLimit, throttle, debounce) against hostile definitions
and callers: keys cannot read outside ``input``/``trigger``, limits and periods are
bounded at save, a key value cannot grow without bound, and a workflow's rate limit is
answered 429 ``RATE_LIMITED`` with ``Retry-After`` at the REST edge with nothing started."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _served import ALICE, API, FLOW, served

from shared.engine import start_controls
from shared.engine.validation import validate_definition
from shared.errors import DefinitionInvalid, InputInvalid
from shared.models import WorkflowExecution
from shared.steps import default_registry

REGISTRY = default_registry()
CONTROLS = ("singleton", "rateLimit", "throttle", "debounce")


def _with(control: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "singleton": {},
        "rateLimit": {"limit": 1, "period": 1},
        "throttle": {"limit": 1, "period": 1},
        "debounce": {"period": 1},
    }[control]
    return {**FLOW, control: {**base, **fields}}


def _issues(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(raw, REGISTRY)
    return [(issue.code, issue.path) for issue in caught.value.issues]


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize(
    "key",
    [
        "vars.secret",
        "steps.a.output",
        "env.HOME",
        "secrets.token",
        "request.headers",
        "execution.id",
    ],
)
def test_a_key_reading_outside_input_and_trigger_is_refused_at_save(control: str, key: str) -> None:
    found = _issues(_with(control, key=key))
    assert ("EXPRESSION_UNKNOWN_VARIABLE", f"/{control}/key") in found, found


@pytest.mark.parametrize("control", CONTROLS)
def test_a_key_that_looks_like_code_never_runs_it(control: str, tmp_path: Path) -> None:
    """CEL, not Python: a key calling ``__import__`` is refused at save or, if CEL can
    parse it, fails at start (an unknown function) with nothing stored or run."""
    canary = tmp_path / "pwned"
    raw = _with(control, key=f"__import__('os').system('touch {canary}')")
    try:
        definition = validate_definition(raw, REGISTRY)
    except DefinitionInvalid as refused:
        assert any(i.path == f"/{control}/key" for i in refused.issues)
        return
    execution = WorkflowExecution(id="e", workflow_id="w", workflow_version=1)
    with pytest.raises(InputInvalid) as caught:
        start_controls.plan(definition, execution)
    assert caught.value.code == "FLOW_KEY_INVALID"
    assert caught.value.path == f"/{control}/key"
    assert not canary.exists()


@pytest.mark.parametrize(
    ("control", "fields", "path"),
    [
        ("rateLimit", {"limit": 10**12}, "/rateLimit/limit"),
        ("rateLimit", {"limit": -1}, "/rateLimit/limit"),
        ("rateLimit", {"period": 10**12}, "/rateLimit/period"),
        ("rateLimit", {"period": "1e12s"}, "/rateLimit/period"),
        ("rateLimit", {"period": "nan"}, "/rateLimit/period"),
        ("rateLimit", {"period": "inf"}, "/rateLimit/period"),
        ("throttle", {"limit": 10**9}, "/throttle/limit"),
        ("throttle", {"burst": 10**9}, "/throttle/burst"),
        ("throttle", {"period": 0}, "/throttle/period"),
        ("debounce", {"period": 10**9}, "/debounce/period"),
        ("debounce", {"period": -5}, "/debounce/period"),
        ("singleton", {"key": "x" * 5000}, "/singleton/key"),
    ],
)
def test_huge_limits_and_periods_are_refused_at_save(
    control: str, fields: dict[str, Any], path: str
) -> None:
    found = _issues(_with(control, **fields))
    assert any(p == path for _, p in found), found


async def test_a_workflow_rate_limit_answers_429_with_retry_after_and_starts_nothing(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s:
        flow = await s.create(ALICE, {**FLOW, "rateLimit": {"limit": 2, "period": "1h"}})
        answers = await asyncio.gather(
            *(
                s.api.post(f"{API}/workflows/{flow}/execute", json={}, headers=ALICE)
                for _ in range(6)
            )
        )
        assert sorted(a.status_code for a in answers) == [202] * 2 + [429] * 4
        for answer in answers:
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "RATE_LIMITED"
                assert 3500 <= int(answer.headers["Retry-After"]) <= 3600
        assert await s.executions("tenant-a") == 2


async def test_a_key_value_too_long_refuses_the_start(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        flow = await s.create(ALICE, {**FLOW, "singleton": {"key": "input.k"}})
        answer = await s.api.post(
            f"{API}/workflows/{flow}/execute", json={"input": {"k": "x" * 10_000}}, headers=ALICE
        )
        assert answer.json()["error"]["code"] == "FLOW_KEY_INVALID", answer.text
        assert answer.json()["error"]["path"] == "/singleton/key"
        assert await s.executions("tenant-a") == 0


async def test_a_bad_key_value_is_answered_400(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        flow = await s.create(ALICE, {**FLOW, "singleton": {"key": "input.k"}})
        answer = await s.api.post(
            f"{API}/workflows/{flow}/execute", json={"input": {"k": "x" * 10_000}}, headers=ALICE
        )
        assert answer.status_code == 400
