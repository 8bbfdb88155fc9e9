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
    "map_definition",
    "map_graph",
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
    wide_branches: int = 100
    """Branches of the wide fan-out/join."""
    map_items: int = 100
    """Items of the map workload."""
    map_concurrency: int = 10
    """Items of the map in flight at once."""
    repeats: int = 5
    """Samples per figure; the report gives their median."""

    @property
    def fanout_steps(self) -> int:
        """Step runs of one fan-out workflow: the fan-out, its branches and the final step."""
        return self.fanout_branches + 2

    @property
    def wide_steps(self) -> int:
        """Step runs of one wide fan-out workflow."""
        return self.wide_branches + 2

    @property
    def map_steps(self) -> int:
        """Step runs of one map workflow: the map, its items and the final step."""
        return self.map_items + 2


FULL = Shape()
QUICK = Shape(
    linear_steps=20,
    fanout_branches=10,
    throughput_executions=40,
    wide_branches=20,
    map_items=20,
    map_concurrency=5,
    repeats=2,
)


class Variant(Protocol):
    """One system under test; each method times one sample and returns seconds."""

    key: str
    label: str
    info: dict[str, Any]
    workloads: frozenset[str]
    """Which of ``linear``, ``fanout``, ``wide``, ``map``, ``throughput`` it measures."""

    async def open(self, directory: str) -> None: ...

    async def linear(self) -> float: ...

    async def fanout(self) -> float: ...

    async def wide(self) -> float: ...

    async def map(self) -> float: ...

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


def map_definition(items: int, concurrency: int) -> dict[str, Any]:
    """A map over ``items`` numbers (``concurrency`` at a time) whose one-step body returns
    one, then a final step counting the results."""
    return {
        "name": "bench-map",
        "variables": {"x": 0, "xs": list(range(items))},
        "steps": [
            {
                "id": "each",
                "type": "map",
                "nextSteps": ["join"],
                "config": {"items": "vars.xs", "start": "body", "concurrency": concurrency},
            },
            {"id": "body", "type": "transform", "config": {"output": "${item - item + 1}"}},
            {"id": "join", "type": "transform", "config": {"set": {"x": "${size(prev)}"}}},
        ],
    }


def fanout_definition(branches: int, name: str = "bench-fanout") -> dict[str, Any]:
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
    return {"name": name, "variables": {"x": 0}, "steps": steps}


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


class MapState(TypedDict):
    """State of the map graph: the items, and the results summed by the reducer."""

    x: int
    xs: list[int]
    hits: Annotated[int, operator.add]


class ItemState(TypedDict):
    """What one map item's node gets (a ``Send``)."""

    item: int


def _fan_items(state: MapState) -> list[Any]:
    from langgraph.types import Send

    return [Send("body", {"item": item}) for item in state["xs"]]


def _body(state: ItemState) -> dict[str, int]:
    return {"hits": state["item"] - state["item"] + 1}


def _map_join(state: MapState) -> dict[str, int]:
    return {"x": state["hits"]}


def map_graph() -> Any:
    """START -> one ``Send`` per item to ``body`` -> join -> END (the run's
    ``max_concurrency`` bounds the items in flight)."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(MapState)
    graph.add_node("body", _body)
    graph.add_node("join", _map_join)
    graph.add_conditional_edges(START, _fan_items, ["body"])
    graph.add_edge("body", "join")
    graph.add_edge("join", END)
    return graph
