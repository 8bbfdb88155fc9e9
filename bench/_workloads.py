"""The three benchmark shapes, as workflow definitions for our engine and as LangGraph graphs.

Every shape does the same work on both sides: each step adds one to a counter (the
linear chain and the 5-step executions) or returns one (the fan-out branches), so the
step bodies cost next to nothing and the figures measure the durable bookkeeping.
"""

from __future__ import annotations

import operator
import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypedDict

__all__ = [
    "FULL",
    "QUICK",
    "Shape",
    "Variant",
    "fanout_definition",
    "fanout_graph",
    "linear_definition",
    "linear_graph",
    "sqlite_pragmas",
]


@dataclass(frozen=True)
class Shape:
    """Sizes of the workloads of one run."""

    linear_steps: int = 100
    """Steps of the linear chain (item 1)."""
    fanout_branches: int = 10
    """Branches of the fan-out/join (item 2)."""
    throughput_executions: int = 1000
    """Executions started at once (item 3)."""
    throughput_steps: int = 5
    """Steps of each of those executions."""
    repeats: int = 5
    """Samples per figure; the report gives their median."""

    @property
    def fanout_steps(self) -> int:
        """Step runs of one fan-out workflow: the fan-out, its branches and the final step."""
        return self.fanout_branches + 2


FULL = Shape()
QUICK = Shape(linear_steps=20, fanout_branches=10, throughput_executions=40, repeats=2)


class Variant(Protocol):
    """One system under test; each method times one sample and returns seconds."""

    key: str
    label: str
    info: dict[str, Any]
    workloads: frozenset[str]
    """Which of ``linear``, ``fanout``, ``throughput`` this variant measures."""

    async def open(self, directory: str) -> None: ...

    async def linear(self) -> float: ...

    async def fanout(self) -> float: ...

    async def throughput(self) -> float: ...

    async def close(self) -> None: ...


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def sqlite_pragmas(conn: sqlite3.Connection) -> dict[str, str]:
    """journal_mode and synchronous (as a name) of an open connection."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    level = conn.execute("PRAGMA synchronous").fetchone()[0]
    return {"journal_mode": str(journal), "synchronous": _SYNCHRONOUS.get(level, str(level))}


# -- our engine ----------------------------------------------------------------------


def linear_definition(steps: int, name: str = "bench-linear") -> dict[str, Any]:
    """``steps`` transform steps in a row, each adding one to ``vars.x``."""
    chain: list[dict[str, Any]] = []
    for index in range(steps):
        step: dict[str, Any] = {
            "id": f"s{index}",
            "type": "transform",
            "config": {"set": {"x": "${vars.x + 1}"}},
        }
        if index + 1 < steps:
            step["nextSteps"] = [f"s{index + 1}"]
        chain.append(step)
    return {"name": name, "variables": {"x": 0}, "steps": chain}


def fanout_definition(branches: int) -> dict[str, Any]:
    """A parallel step with ``branches`` one-step branches, then a final step."""
    names = [f"b{index}" for index in range(branches)]
    steps: list[dict[str, Any]] = [
        {
            "id": "fan",
            "type": "parallel",
            "config": {"branches": [{"name": name, "start": name} for name in names]},
            "nextSteps": ["join"],
        },
        *[
            {"id": name, "type": "transform", "config": {"output": "${vars.x + 1}"}}
            for name in names
        ],
        {"id": "join", "type": "transform", "config": {"set": {"x": "${size(prev)}"}}},
    ]
    return {"name": "bench-fanout", "variables": {"x": 0}, "steps": steps}


# -- LangGraph -----------------------------------------------------------------------


class Counter(TypedDict):
    """State of the linear graphs."""

    x: int


class FanState(TypedDict):
    """State of the fan-out graph: branch results are summed by the reducer."""

    x: int
    hits: Annotated[int, operator.add]


def _increment(state: Counter) -> dict[str, int]:
    return {"x": state["x"] + 1}


def _start(state: FanState) -> dict[str, int]:
    return {"x": state["x"]}


def _branch(state: FanState) -> dict[str, int]:
    return {"hits": 1}


def _join(state: FanState) -> dict[str, int]:
    return {"x": state["hits"]}


def linear_graph(nodes: int) -> Any:
    """An uncompiled StateGraph of ``nodes`` nodes in a row, each incrementing ``x``."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(Counter)
    names = [f"n{index}" for index in range(nodes)]
    for name in names:
        graph.add_node(name, _increment)
    for source, target in zip([START, *names], [*names, END], strict=True):
        graph.add_edge(source, target)
    return graph


def fanout_graph(branches: int) -> Any:
    """START -> fan -> ``branches`` nodes -> join (waits for all) -> END."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(FanState)
    names = [f"b{index}" for index in range(branches)]
    graph.add_node("fan", _start)
    graph.add_node("join", _join)
    graph.add_edge(START, "fan")
    for name in names:
        graph.add_node(name, _branch)
        graph.add_edge("fan", name)
    graph.add_edge(names, "join")
    graph.add_edge("join", END)
    return graph
