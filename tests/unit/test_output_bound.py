"""cap_output's shortcut: ``_json_bound`` never undercounts the JSON cap_output measures."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from shared.engine import policy


def _encoded_size(value: Any) -> int:
    """What cap_output measures: ``json.dumps`` (ASCII escapes, compact) in UTF-8 bytes."""
    return len(json.dumps(value, default=str, separators=(",", ":")).encode())


def _slow_cap(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """cap_output without its shortcut."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    if len(text.encode()) <= max_bytes:
        return value, False
    preview = text.encode()[: max(0, max_bytes - 200)].decode(errors="ignore")
    return {"truncated": True, "bytes": len(text.encode()), "preview": preview}, True


_TRICKY = [
    None,
    True,
    False,
    0,
    -0,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    -(2**64 - 1),
    2**64,
    10**40,
    -0.0,
    1e308,
    -1.7976931348623157e308,
    5e-324,
    -2.2250738585072014e-308,
    math.inf,
    -math.inf,
    math.nan,
    "",
    '"',
    "\\",
    '"\\' * 20,
    "\x00\x01\x1f\x7f",
    "\u2028\u2029",
    "\ud800",  # a lone surrogate: one escape
    "é" * 10,
    "\U0001f600",  # outside the BMP: a surrogate pair of escapes
    "\U0001f600" * 33,
    "a\U00010000b\U0010ffff",
    {"": ""},
    {"\U0001f600": "\x00"},
    {'"k"': ["\\", None, -0.0]},
    {"a": {"b": {"c": 1}}},  # deeper than the bound looks
    {"a": {"b": "\U0001f600" * 3, "c": [1e308, -(2**63), True]}},
    [[None] * 32],
    list(range(32)),
    list(range(33)),
    [{"x": "\x01" * 5}, ["\U0001f600"], {}],
    {str(i): i for i in range(32)},
]


@pytest.mark.parametrize("value", _TRICKY, ids=repr)
def test_bound_is_at_least_the_encoded_size(value: Any) -> None:
    bound = policy._json_bound(value, 10**9, 2)
    if bound is not None:
        assert bound >= _encoded_size(value)


@pytest.mark.parametrize("value", _TRICKY, ids=repr)
def test_cap_output_agrees_with_encoding_around_the_exact_size(value: Any) -> None:
    size = _encoded_size(value)
    for cap in (size - 1, size, size + 1, 12 * size + 40):
        assert policy.cap_output(value, cap) == _slow_cap(value, cap), cap


def test_small_maps_and_lists_take_the_shortcut() -> None:
    """The shortcut covers the usual output of a cheap step (else it saves nothing)."""
    assert policy._surely_small({"n": 1, "ok": True, "name": "x" * 20}, 4096)
    assert policy._surely_small([1, 2.5, None, "é"], 4096)
    assert not policy._surely_small({"n": 1}, 5)  # bound over the cap: encode instead
    assert not policy._surely_small({1: 1}, 4096)  # non-string key: json.dumps decides
    assert not policy._surely_small(("a",), 4096)  # only dict and list are looked into
    assert not policy._surely_small({"a": {"b": {"c": 1}}}, 4096)  # too deep to look


def test_a_cycle_is_not_surely_small() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert not policy._surely_small(cycle, 10**6)
    assert policy.cap_output(cycle, 10**6) == (str(cycle), False)


def _random_string(rng: random.Random) -> str:
    alphabet = ['"', "\\", "\x00", "\x1f", "a", "é", "\u2028", "\uffff", "\U0001f600", "\ud800"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))


def _random_value(rng: random.Random, depth: int) -> Any:
    scalars = [
        None,
        True,
        rng.randrange(-(2**64), 2**64),
        rng.choice([-0.0, 1e308, -5e-324, math.nan, rng.random() * 10 ** rng.randrange(-300, 300)]),
        _random_string(rng),
    ]
    if depth == 0 or rng.random() < 0.4:
        return rng.choice(scalars)
    if rng.random() < 0.5:
        return [_random_value(rng, depth - 1) for _ in range(rng.randrange(6))]
    return {_random_string(rng): _random_value(rng, depth - 1) for _ in range(rng.randrange(6))}


def test_bound_on_random_nested_values() -> None:
    rng = random.Random(15)
    bounded = 0
    for _ in range(3000):
        value = _random_value(rng, 3)
        size = _encoded_size(value)
        bound = policy._json_bound(value, 10**9, 2)
        if bound is not None:
            bounded += 1
            assert bound >= size, value
        for cap in (size - 1, size):
            assert policy.cap_output(value, cap) == _slow_cap(value, cap), value
    assert bounded > 1000  # the check above ran on many values
