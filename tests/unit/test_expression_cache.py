"""The checked-expression and whole-template caches: per (source, roots), bounded, and
holding nothing an evaluation could change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import expressions
from shared.errors import StepFailed
from shared.expressions import STEP_ROOTS, TRIGGER_ROOTS, expression, render


def test_a_source_accepted_for_some_roots_is_still_refused_for_others() -> None:
    assert expression("input.x + 1", STEP_ROOTS).evaluate({"input": {"x": 1}}) == 2
    with pytest.raises(StepFailed) as refused:
        expression("input.x + 1", TRIGGER_ROOTS)
    assert refused.value.code == "EXPRESSION_UNKNOWN_VARIABLE"
    assert expression("data.x", TRIGGER_ROOTS).evaluate({"data": {"x": 3}}) == 3
    with pytest.raises(StepFailed):
        expression("data.x", STEP_ROOTS)


def test_a_refused_expression_raises_every_time_and_is_not_kept() -> None:
    for _ in range(3):
        with pytest.raises(StepFailed) as refused:
            expression("nobody.here", STEP_ROOTS)
        assert refused.value.code == "EXPRESSION_UNKNOWN_VARIABLE"
    assert ("nobody.here", STEP_ROOTS) not in expressions._checked


def test_the_checked_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "_CHECKED_MAX", 8)
    for n in range(50):
        assert expression(f"input.x + {n}").evaluate({"input": {"x": 1}}) == n + 1
        assert len(expressions._checked) <= 8
    assert expression("input.x + 3").evaluate({"input": {"x": 1}}) == 4  # refilled


def test_an_evaluation_result_is_not_shared_with_the_next() -> None:
    compiled = expression("input.xs")
    env = {"input": {"xs": [1, 2]}}
    first = compiled.evaluate(env)
    first.append(99)
    assert compiled.evaluate(env) == [1, 2]
    assert env == {"input": {"xs": [1, 2]}}
    rendered = render({"a": "${input.xs}", "b": "n=${input.xs.size()}"}, env)
    rendered["a"].append(7)
    assert render({"a": "${input.xs}", "b": "n=${input.xs.size()}"}, env) == {
        "a": [1, 2],
        "b": "n=2",
    }


def test_tenants_evaluating_the_same_source_see_only_their_own_data() -> None:
    template = {"who": "${vars.tenant}", "text": "hello ${vars.tenant}"}

    def run(tenant: int) -> list[dict[str, object]]:
        env = {"vars": {"tenant": f"t{tenant}"}}
        return [render(template, env) for _ in range(200)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(8)))
    for tenant, renders in enumerate(results):
        expected = {"who": f"t{tenant}", "text": f"hello t{tenant}"}
        assert all(one == expected for one in renders)


def test_long_texts_are_matched_but_not_kept() -> None:
    long_text = "x" * 5000 + "${input.a}"
    before = expressions._whole_cached.cache_info().currsize
    assert render(long_text, {"input": {"a": 1}}) == "x" * 5000 + "1"
    assert expressions._whole_cached.cache_info().currsize == before
    assert render("${input.a}", {"input": {"a": [1]}}) == [1]  # whole: the typed value
    assert render(" ${input.a}", {"input": {"a": 1}}) == " 1"
    assert expressions._whole_cached.cache_info().maxsize == 4096
