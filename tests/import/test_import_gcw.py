"""Cloud Workflows constructs, one by one: what each becomes, and what is reported."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import InputInvalid
from shared.importers import ImportResult, translate
from shared.importers.gcw_expr import to_cel
from shared.importers.result import Unsupported


def gcw(text: str) -> ImportResult:
    result = translate("gcw", text)
    assert result.valid, result.issues
    return result


def steps(result: ImportResult) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in result.definition["steps"]}


def codes(result: ImportResult) -> tuple[list[str], list[str]]:
    return [w.code for w in result.warnings], [u.code for u in result.unsupported]


@pytest.mark.parametrize(
    ("source", "cel"),
    [
        ("len(items)", "size(vars.items)"),
        ("keys(m)", "vars.m.map(k, k)"),
        ('map.get(m, "k")', '("k" in vars.m ? vars.m["k"] : null)'),
        (
            'default(map.get(m, "k"), 3)',
            '("k" in vars.m ? ("k" in vars.m ? vars.m["k"] : null) : 3)',
        ),
        ('text.match_regex(s, "^a")', 'vars.s.matches("^a")'),
        ("a + b * 2 - c % 3", "((vars.a + (vars.b * 2)) - (vars.c % 3))"),
        ("a / 2", "(double(vars.a) / double(2))"),
        ("a // 2", "(vars.a / 2)"),
        ('"x" + string(n)', '("x" + string(vars.n))'),
        ("a == 1 and not b or c != 2", "(((vars.a == 1) && !(vars.b)) || (vars.c != 2))"),
        ('"k" in m', '("k" in vars.m)'),
        ("a < b and a >= 0", "((vars.a < vars.b) && (vars.a >= 0))"),
        ("m.list[0].name", "vars.m.list[0].name"),
        ("int(x) + double(y)", "(int(vars.x) + double(vars.y))"),
        ("True", "true"),
        ("[1, {'a': null}]", '[1, {"a": null}]'),
        ("x * 1.5 + 2", "((vars.x * 1.5) + 2.0)"),
    ],
)
def test_expressions_translate_to_cel(source: str, cel: str) -> None:
    assert to_cel(source) == cel


@pytest.mark.parametrize(
    "source",
    [
        "json.encode_to_string(x)",
        "text.to_lower(s)",
        "sys.get_env('X')",
        "map.get(m, ['a', 'b'])",
        "default(x, 1)",
        "a ?? b",
        "'unterminated",
    ],
)
def test_expressions_without_an_equivalent_are_unsupported(source: str) -> None:
    with pytest.raises(Unsupported):
        to_cel(source)


def test_the_main_param_is_the_execution_input_and_return_the_result() -> None:
    result = gcw("main:\n  params: [args]\n  steps:\n    - r:\n        return: ${args.x + 1}\n")
    assert steps(result)["r"]["config"]["set"] == {"wfResult": "${(input.x + 1)}"}
    assert result.definition["output"] == "${'wfResult' in vars ? vars.wfResult : null}"
    assert result.clean


def test_assign_sets_variables_in_order_and_a_repeated_name_starts_a_new_step() -> None:
    result = gcw("- a:\n    assign:\n      - x: 1\n      - y: ${x + 1}\n      - x: 5\n")
    found = steps(result)
    assert found["a"]["config"]["set"] == {"x": 1, "y": "${(vars.x + 1)}"}
    assert found["a"]["nextSteps"] == ["a_1"] and found["a_1"]["config"]["set"] == {"x": 5}


def test_assign_into_a_key_is_unsupported_with_its_path() -> None:
    result = gcw("- a:\n    assign:\n      - m.k: 1\n")
    assert [(u.code, u.path) for u in result.unsupported] == [("GCW_ASSIGN_PATH", "/0/a/assign/0")]


@pytest.mark.parametrize("method", ["get", "post", "put", "delete", "patch"])
def test_http_calls_keep_method_headers_query_body_timeout_and_give_gcw_result_shape(
    method: str,
) -> None:
    text = (
        f"- c:\n    call: http.{method}\n    args:\n      url: ${{base + '/x'}}\n"
        "      headers: {A: b}\n      query: {q: 1}\n      body:\n        k: ${v}\n      timeout: 20\n"
        "    result: r\n"
    )
    result = gcw(text)
    call = steps(result)["c"]
    assert call["type"] == "http"
    assert call["config"] == {
        "method": method.upper(),
        "url": '${(vars.base + "/x")}',
        "headers": {"A": "b"},
        "query": {"q": 1},
        "body": {"k": "${vars.v}"},
        "timeoutSeconds": 20,
    }
    shape = steps(result)[call["nextSteps"][0]]
    assert shape["config"]["set"]["r"] == {
        "body": "${prev.body}",
        "code": "${prev.status}",
        "headers": "${prev.headers}",
    }


def test_http_request_with_auth_warns_about_auth() -> None:
    result = gcw(
        "- c:\n    call: http.request\n    args:\n      method: PATCH\n      url: https://a.test\n      auth: {type: OIDC}\n"
    )
    assert steps(result)["c"]["config"]["method"] == "PATCH"
    assert [(w.code, w.path) for w in result.warnings] == [("GCW_HTTP_AUTH", "/0/c/args/auth")]


def test_switch_with_condition_next_and_embedded_steps_and_fall_through() -> None:
    text = (
        "- s:\n    switch:\n      - condition: ${x > 1}\n        next: big\n"
        "      - condition: ${x == 0}\n        steps:\n          - z:\n              assign:\n                - y: 0\n"
        "- small:\n    return: small\n- big:\n    return: big\n"
    )
    result = gcw(text)
    branch = steps(result)["s"]
    assert branch["type"] == "branch"
    assert branch["config"]["cases"][0] == {"when": "(vars.x > 1)", "next": "big"}
    assert branch["config"]["cases"][1]["next"] == "z"
    assert branch["config"]["default"] == "small"
    assert steps(result)["z"]["nextSteps"] == ["small"]


def test_next_end_ends_and_unknown_next_is_reported() -> None:
    result = gcw("- a:\n    assign:\n      - x: 1\n    next: end\n- b:\n    next: nowhere\n")
    assert steps(result)["a"]["nextSteps"] == []
    assert [(u.code, u.path) for u in result.unsupported] == [("GCW_NEXT_UNKNOWN", "/1/b/next")]


def test_for_in_is_a_bounded_sequential_loop_with_value_index_break_and_continue() -> None:
    text = (
        "- l:\n    for:\n      value: v\n      index: i\n      in: ${items}\n      steps:\n"
        "        - s:\n            switch:\n              - condition: ${v == 3}\n                next: break\n"
        "              - condition: ${v == 1}\n                next: continue\n"
        "        - add:\n            assign:\n              - total: ${total + v}\n"
        "- done:\n    return: ${total}\n"
    )
    found = steps(gcw(text))
    assert found["l"]["config"]["set"] == {"wfLoop1I": 0, "wfLoop1Items": "${vars.items}"}
    check = found["l_check"]
    assert check["maxIterations"] == 10_000
    assert check["config"]["cases"][0]["when"] == "vars.wfLoop1I < size(vars.wfLoop1Items)"
    assert found["l_bind"]["config"]["set"] == {
        "v": "${vars.wfLoop1Items[vars.wfLoop1I]}",
        "i": "${vars.wfLoop1I}",
    }
    cases = found["s"]["config"]["cases"]
    assert cases[0]["next"] == "done" and cases[1]["next"] == "l_next"


def test_for_range_counts_inclusively() -> None:
    found = steps(
        gcw(
            "- l:\n    for:\n      value: v\n      range: [1, 9]\n      steps:\n        - a:\n            assign:\n              - s: ${v}\n"
        )
    )
    assert found["l"]["config"]["set"] == {"wfLoop1I": 1, "wfLoop1End": 9}
    assert found["l_check"]["config"]["cases"][0]["when"] == "vars.wfLoop1I <= vars.wfLoop1End"


def test_parallel_branches_become_a_parallel_step() -> None:
    text = (
        "- p:\n    parallel:\n      shared: [a]\n      concurrency_limit: 2\n      branches:\n"
        "        - one:\n            steps:\n              - x:\n                  assign:\n                    - a: 1\n"
        "        - two:\n            steps:\n              - y:\n                  assign:\n                    - b: 2\n"
    )
    result = gcw(text)
    assert steps(result)["p"]["config"]["branches"] == [
        {"name": "one", "start": "x"},
        {"name": "two", "start": "y"},
    ]
    assert codes(result) == (["GCW_CONCURRENCY_LIMIT"], [])


def test_parallel_for_becomes_a_map_whose_value_and_index_are_item_and_index() -> None:
    text = (
        "- p:\n    parallel:\n      concurrency_limit: 3\n      for:\n        value: v\n        index: i\n"
        "        in: ${xs}\n        steps:\n          - c:\n              call: http.post\n"
        "              args:\n                url: https://a.test\n                body:\n                  v: ${v}\n                  i: ${i}\n"
    )
    found = steps(gcw(text))
    assert found["p"]["type"] == "map"
    assert found["p"]["config"] == {"items": "vars.xs", "start": "c", "concurrency": 3}
    assert found["c"]["config"]["body"] == {"v": "${item}", "i": "${index}"}


def test_try_retry_except_become_on_error_with_fallback_and_the_error_variable() -> None:
    text = (
        "- t:\n    try:\n      call: http.get\n      args: {url: https://a.test}\n"
        "    retry:\n      predicate: ${http.default_retry_predicate}\n      max_retries: 4\n"
        "      backoff: {initial_delay: 2, max_delay: 30, multiplier: 3}\n"
        "    except:\n      as: err\n      steps:\n        - h:\n            return: ${err.code}\n"
    )
    result = gcw(text)
    found = steps(result)
    on_error = found["t"]["onError"]
    assert on_error["strategy"] == "fallback" and on_error["fallbackStep"] == "t_except"
    assert on_error["retry"] == {
        "maxAttempts": 5,
        "initialDelaySeconds": 2.0,
        "multiplier": 3.0,
        "maxDelaySeconds": 30.0,
        "jitter": 0.0,
        "retryOn": [
            "HTTP_429",
            "HTTP_502",
            "HTTP_503",
            "HTTP_504",
            "HTTP_TIMEOUT",
            "HTTP_UNREACHABLE",
        ],
    }
    assert "err" in found["t_except"]["config"]["set"] and found["t_except"]["nextSteps"] == ["h"]
    assert codes(result) == (["GCW_ERROR_SHAPE"], [])


def test_a_custom_retry_predicate_is_a_warning() -> None:
    text = "- t:\n    try:\n      call: http.get\n      args: {url: https://a.test}\n    retry:\n      predicate: ${mine}\n      max_retries: 2\n"
    result = gcw(text)
    assert steps(result)["t"]["onError"]["strategy"] == "retry"
    assert [(w.code, w.path) for w in result.warnings] == [
        ("GCW_RETRY_PREDICATE", "/0/t/retry/predicate")
    ]


def test_raise_fails_with_the_value_kept() -> None:
    result = gcw("- r:\n    raise: ${'bad ' + x}\n")
    found = steps(result)
    assert found["r"]["config"]["set"] == {"wfRaised": '${("bad " + vars.x)}'}
    assert found["r_fail"]["config"]["output"].startswith("${int(")
    assert codes(result) == (["GCW_RAISE"], [])


def test_sys_sleep_and_log_and_callbacks() -> None:
    text = (
        "- s:\n    call: sys.sleep\n    args: {seconds: 5}\n"
        "- l:\n    call: sys.log\n    args:\n      data: ${x}\n"
        "- e:\n    call: events.create_callback_endpoint\n    args: {http_callback_method: POST}\n    result: cb\n"
        "- w:\n    call: events.await_callback\n    args:\n      callback: ${cb}\n      timeout: 600\n    result: got\n"
    )
    result = gcw(text)
    found = steps(result)
    assert found["s"]["type"] == "wait" and found["s"]["config"] == {"seconds": 5}
    assert found["l"]["config"]["output"] == "${vars.x}"
    assert found["w"]["type"] == "wait_for_event"
    assert found["w"]["config"] == {"event": "callback", "timeoutSeconds": 600}
    assert found[found["w"]["nextSteps"][0]]["config"]["set"]["got"] == {
        "http_request": {"body": "${prev.payload}"}
    }
    assert codes(result) == (["GCW_CALLBACK_ENDPOINT"], [])


def test_subworkflows_are_inlined_with_their_params_and_locals_renamed() -> None:
    text = (
        "main:\n  steps:\n    - c:\n        call: add\n        args: {a: 1}\n        result: r\n"
        "    - done:\n        return: ${r}\n"
        "add:\n  params: [a, b: 10]\n  steps:\n    - s:\n        assign:\n          - t: ${a + b}\n"
        "    - back:\n        return: ${t}\n"
    )
    found = steps(gcw(text))
    assert found["c"]["config"]["set"] == {"add1_a": 1, "add1_b": 10, "r": None}
    assert found["add1_s"]["config"]["set"] == {"add1_t": "${(vars.add1_a + vars.add1_b)}"}
    assert found["add1_back"]["config"]["set"] == {"r": "${vars.add1_t}"}
    assert found["add1_back"]["nextSteps"] == ["done"]


def test_recursive_subworkflows_are_unsupported() -> None:
    text = (
        "main:\n  steps:\n    - c:\n        call: f\nf:\n  steps:\n    - again:\n        call: f\n"
    )
    result = translate("gcw", text)
    assert "GCW_RECURSION" in codes(result)[1]


def test_connectors_become_marked_placeholders() -> None:
    result = gcw(
        "- q:\n    call: googleapis.pubsub.v1.projects.topics.publish\n    args: {topic: t}\n    result: out\n"
    )
    step = steps(result)["q"]
    assert step["type"] == "http" and step["config"]["url"].startswith(
        "https://placeholder.invalid/"
    )
    assert step["name"].startswith("PLACEHOLDER") and step["outputVar"] == "out"
    assert [(u.code, u.path) for u in result.unsupported] == [("GCW_CONNECTOR", "/0/q/call")]


def test_backward_jumps_get_a_loop_bound() -> None:
    result = gcw(
        "- a:\n    assign:\n      - i: ${i + 1}\n- b:\n    switch:\n      - condition: ${i < 3}\n        next: a\n"
    )
    assert any(s.get("maxIterations") for s in result.definition["steps"])


def test_a_document_without_main_is_refused() -> None:
    with pytest.raises(InputInvalid) as caught:
        translate("gcw", "other:\n  steps: []\n")
    assert caught.value.code == "GCW_NO_MAIN"
