"""The chaos suite's workflow and the result each of its executions must produce.

One execution: transform -> http (retried) -> branch (even/odd k) -> transform ->
parallel (branch a: http; branch b: http -> transform) -> map over ``items`` (body:
http -> transform, concurrency 2) -> transform. Every http step POSTs to the counter
service's ``/effect`` with its logical name (``execution|step|item``); the counter
answers a value derived from that name, so the expected result of every execution is
known in advance (``expected_result``).
"""

from __future__ import annotations

from typing import Any

from _chaos_counter import answer_for

HTTP_STEPS = ("first_call", "a_call", "b_call")
MAP_STEP = "m_call"


def _call(step_id: str, item: str = "0", next_steps: list[str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": step_id,
        "type": "http",
        "config": {
            "method": "POST",
            "url": "${vars.counter}/effect",
            "body": {"execution": "${execution.id}", "step": step_id, "item": item},
            "timeoutSeconds": 5,
        },
        "onError": {
            "strategy": "retry",
            "retry": {
                "maxAttempts": 4,
                "initialDelaySeconds": 0.2,
                "multiplier": 2,
                "maxDelaySeconds": 1,
            },
        },
    }
    if next_steps:
        step["nextSteps"] = next_steps
    return step


def workflow(name: str, counter_url: str) -> dict[str, Any]:
    """The definition, calling the counter service at ``counter_url``."""
    return {
        "name": name,
        "description": "bench/chaos.py: http, transform, branch, parallel and map under faults",
        "tags": ["chaos"],
        "variables": {"counter": counter_url, "k": 0, "items": []},
        "steps": [
            {
                "id": "start",
                "type": "transform",
                "config": {"set": {"doubled": "${vars.k * 2}"}},
                "nextSteps": ["first_call"],
            },
            {**_call("first_call", next_steps=["route"]), "outputVar": "first"},
            {
                "id": "route",
                "type": "branch",
                "config": {
                    "cases": [{"when": "vars.k % 2 == 0", "next": "even"}],
                    "default": "odd",
                },
                "nextSteps": ["even", "odd"],
            },
            {
                "id": "even",
                "type": "transform",
                "config": {"set": {"path": "even"}},
                "nextSteps": ["fan"],
            },
            {
                "id": "odd",
                "type": "transform",
                "config": {"set": {"path": "odd"}},
                "nextSteps": ["fan"],
            },
            {
                "id": "fan",
                "type": "parallel",
                "config": {
                    "branches": [{"name": "a", "start": "a_call"}, {"name": "b", "start": "b_call"}]
                },
                "outputVar": "fan",
                "nextSteps": ["each"],
            },
            _call("a_call"),
            _call("b_call", next_steps=["b_done"]),
            {"id": "b_done", "type": "transform", "config": {"output": "${prev.body.result + 1}"}},
            {
                "id": "each",
                "type": "map",
                "config": {"items": "vars.items", "start": "m_call", "concurrency": 2},
                "outputVar": "mapped",
                "nextSteps": ["finish"],
            },
            _call("m_call", item="${index}", next_steps=["m_out"]),
            {"id": "m_out", "type": "transform", "config": {"output": "${prev.body.result * 2}"}},
            {
                "id": "finish",
                "type": "transform",
                "config": {"set": {"done": True}},
            },
        ],
        "output": {
            "path": "${vars.path}",
            "doubled": "${vars.doubled}",
            "first": "${vars.first.body.result}",
            "a": "${vars.fan.a.body.result}",
            "b": "${vars.fan.b}",
            "mapped": "${vars.mapped}",
        },
    }


def execution_input(k: int) -> dict[str, Any]:
    """Input of the k-th execution: 1 to 3 map items."""
    return {"k": k, "items": list(range(1 + k % 3))}


def expected_result(execution_id: str, k: int) -> dict[str, Any]:
    items = execution_input(k)["items"]
    return {
        "path": "even" if k % 2 == 0 else "odd",
        "doubled": k * 2,
        "first": answer_for(execution_id, "first_call", 0),
        "a": answer_for(execution_id, "a_call", 0),
        "b": answer_for(execution_id, "b_call", 0) + 1,
        "mapped": [answer_for(execution_id, MAP_STEP, i) * 2 for i in items],
    }


def logical_steps(execution_id: str, k: int) -> list[str]:
    """The counter's names of the effects one succeeded execution must have made."""
    names = [f"{execution_id}|{step}|0" for step in HTTP_STEPS]
    names += [f"{execution_id}|{MAP_STEP}|{i}" for i in execution_input(k)["items"]]
    return names
