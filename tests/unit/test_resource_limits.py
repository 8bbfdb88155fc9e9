"""The limits on user YAML and on CEL evaluation cost (``shared.models.safe_yaml``,
``shared.expressions``)."""

from __future__ import annotations

import pytest

from shared.errors import InputInvalid, StepFailed
from shared.expressions import (
    EXPRESSION_COST_BUDGET,
    MAX_COMPREHENSION_NESTING,
    compile_expression,
    expression,
)
from shared.models.safe_yaml import MAX_YAML_BYTES, load_yaml_documents


def test_yaml_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(InputInvalid, match="exceeds") as caught:
        load_yaml_documents("a: " + "x" * MAX_YAML_BYTES)
    assert caught.value.code == "INVALID_INPUT"


def test_yaml_merge_keys_need_an_alias_and_are_refused() -> None:
    with pytest.raises(InputInvalid, match="alias"):
        load_yaml_documents("base: &b {a: 1}\nother:\n  <<: *b\n")


def test_yaml_without_aliases_loads_every_document() -> None:
    assert load_yaml_documents("a: '&not an anchor *x'\n---\n---\nb: [1, 2]\n") == [
        {"a": "&not an anchor *x"},
        {"b": [1, 2]},
    ]


@pytest.mark.parametrize(
    ("source", "nesting"),
    [
        ("vars.total + 1", 0),
        ("input.xs.map(x, x * 2)", 1),
        ("input.xs.map(x, x).filter(y, y > 1)", 1),
        ("input.xs.exists(x, input.ys.all(y, y != x))", 2),
        ("'.map(' + input.s", 0),
    ],
)
def test_comprehension_nesting_is_read_from_the_source(source: str, nesting: int) -> None:
    compiled, issues = compile_expression(source)
    assert issues == []
    assert compiled is not None
    assert compiled.cost.nesting == nesting


def test_comprehensions_nested_past_the_limit_are_refused_with_a_pointer() -> None:
    source = "input.a.map(x, input.a.map(y, input.a.filter(z, z > x + y)))"
    compiled, issues = compile_expression(source, "/steps/0/config/set/v")
    assert compiled is None
    assert [(i.code, i.path) for i in issues] == [("EXPRESSION_LIMIT", "/steps/0/config/set/v")]
    assert str(MAX_COMPREHENSION_NESTING) in issues[0].message


def test_a_comprehension_over_a_small_list_runs() -> None:
    assert expression("input.xs.map(x, x * 2)").evaluate({"input": {"xs": [1, 2, 3]}}) == [2, 4, 6]


def test_a_comprehension_over_a_list_too_long_fails_before_running() -> None:
    xs = list(range(5000))
    with pytest.raises(StepFailed) as caught:
        expression("input.xs.filter(x, x > 1).size()").evaluate({"input": {"xs": xs}})
    assert caught.value.code == "EXPRESSION_LIMIT"
    assert caught.value.retryable is False


def test_concatenations_that_lengthen_a_ranged_list_count() -> None:
    xs = list(range(800))
    plain = expression("input.xs.map(x, x + 1)")
    doubled = expression("(input.xs + input.xs + input.xs).map(x, x)")
    assert plain.cost.estimate({"input": {"xs": xs}}) <= EXPRESSION_COST_BUDGET
    assert doubled.cost.estimate({"input": {"xs": xs}}) > EXPRESSION_COST_BUDGET


def test_long_strings_do_not_count_as_ranges() -> None:
    env = {"input": {"xs": [1, 2], "text": "y" * 100_000}}
    assert expression("input.xs.map(x, x)").evaluate(env) == [1, 2]
