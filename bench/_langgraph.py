"""LangGraph with its SQLite checkpointers, as bench variants.

``SqliteSaver`` opens its connection with ``sqlite3.connect(path)`` and its ``setup()``
runs only ``PRAGMA journal_mode=WAL``: it never sets ``synchronous``, so the SQLite
default applies (FULL, unless the library was compiled otherwise); ``AsyncSqliteSaver``
does the same through aiosqlite. Every ``put`` and ``put_writes`` commits on its own.
``sqlite_pragmas`` reads what the saver's connection really uses.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any

from _workloads import Shape, fanout_graph, linear_graph, map_graph, sqlite_pragmas

__all__ = ["AsyncSaverVariant", "SyncSaverVariant"]

_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _config(thread_id: str, limit: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": limit + 10}


class BenchFailed(RuntimeError):
    """A graph returned the wrong counter."""


class _GraphVariant:
    """What both savers share: the compiled graphs, thread ids and the timed samples."""

    workloads = frozenset({"linear", "fanout", "wide", "map", "throughput"})

    def __init__(self, key: str, label: str, shape: Shape, info: dict[str, Any]) -> None:
        self.key, self.label, self.shape = key, label, shape
        self.info: dict[str, Any] = {"system": "langgraph", **info}
        self._graphs: dict[str, Any] = {}
        self._threads = 0

    def _compile(self, saver: Any) -> None:
        shape = self.shape
        for name, graph in (
            ("linear", linear_graph(shape.linear_steps)),
            ("fanout", fanout_graph(shape.fanout_branches)),
            ("wide", fanout_graph(shape.wide_branches)),
            ("map", map_graph()),
            ("small", linear_graph(shape.throughput_steps)),
        ):
            self._graphs[name] = graph.compile(checkpointer=saver)

    def _args(self, name: str, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Input and config of a new thread of graph ``name``."""
        self._threads += 1
        state: dict[str, Any] = {"x": 0}
        if name in ("fanout", "wide"):
            state["hits"] = 0
        config = _config(f"{name}-{self._threads}", steps)
        if name == "map":
            state.update(hits=0, xs=list(range(self.shape.map_items)))
            config["max_concurrency"] = self.shape.map_concurrency
        return state, config

    async def _call(self, name: str, steps: int) -> dict[str, Any]:
        raise NotImplementedError

    async def _many(self, name: str, steps: int, count: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _timed(self, name: str, steps: int, expected: int, count: int = 0) -> float:
        began = time.perf_counter()
        if count:
            results = await self._many(name, steps, count)
        else:
            results = [await self._call(name, steps)]
        elapsed = time.perf_counter() - began
        for result in results:
            if result.get("x") != expected:
                raise BenchFailed(f"LangGraph {name}: x={result.get('x')!r}, want {expected}")
        return elapsed

    async def linear(self) -> float:
        steps = self.shape.linear_steps
        return await self._timed("linear", steps, steps)

    async def fanout(self) -> float:
        return await self._timed("fanout", self.shape.fanout_steps, self.shape.fanout_branches)

    async def wide(self) -> float:
        return await self._timed("wide", self.shape.wide_steps, self.shape.wide_branches)

    async def map(self) -> float:
        return await self._timed("map", self.shape.map_steps, self.shape.map_items)

    async def throughput(self) -> float:
        steps = self.shape.throughput_steps
        return await self._timed("small", steps, steps, self.shape.throughput_executions)


class SyncSaverVariant(_GraphVariant):
    """``SqliteSaver`` on one connection, ``invoke`` per thread_id one after another.

    (``graph.batch`` over a thread pool was slower than this on 2 cores.)
    """

    def __init__(
        self,
        key: str,
        label: str,
        shape: Shape,
        *,
        durability: str | None,
        workloads: frozenset[str] | None = None,
    ) -> None:
        super().__init__(
            key,
            label,
            shape,
            {
                "saver": "SqliteSaver",
                "api": "invoke, one thread after another",
                "durability": durability or "default (async)",
            },
        )
        self.durability = durability
        if workloads is not None:
            self.workloads = workloads
        self._conn: sqlite3.Connection | None = None

    async def open(self, directory: str) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self._conn = sqlite3.connect(
            os.path.join(directory, f"{self.key}.db"), check_same_thread=False
        )
        saver = SqliteSaver(self._conn)
        saver.setup()
        self.info.update(sqlite_pragmas(self._conn))
        self._compile(saver)
        await self.linear()  # warm-up
        await self.fanout()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _invoke(self, name: str, steps: int) -> dict[str, Any]:
        state, config = self._args(name, steps)
        kwargs = {} if self.durability is None else {"durability": self.durability}
        result: dict[str, Any] = self._graphs[name].invoke(state, config, **kwargs)
        return result

    async def _call(self, name: str, steps: int) -> dict[str, Any]:
        return self._invoke(name, steps)

    async def _many(self, name: str, steps: int, count: int) -> list[dict[str, Any]]:
        return [self._invoke(name, steps) for _ in range(count)]


class AsyncSaverVariant(_GraphVariant):
    """``AsyncSqliteSaver`` (aiosqlite), ``ainvoke`` per thread_id under ``asyncio.gather``."""

    def __init__(self, key: str, label: str, shape: Shape) -> None:
        super().__init__(
            key,
            label,
            shape,
            {
                "saver": "AsyncSqliteSaver",
                "api": "ainvoke, asyncio.gather over all threads",
                "durability": "default (async)",
            },
        )
        self._conn: Any = None

    async def open(self, directory: str) -> None:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self._conn = aiosqlite.connect(os.path.join(directory, f"{self.key}.db"))
        await self._conn
        saver = AsyncSqliteSaver(self._conn)
        await saver.setup()
        for pragma in ("journal_mode", "synchronous"):
            async with self._conn.execute(f"PRAGMA {pragma}") as cursor:
                value = (await cursor.fetchone())[0]
            self.info[pragma] = _SYNCHRONOUS.get(value, str(value))
        self._compile(saver)
        await self.linear()  # warm-up
        await self.fanout()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _call(self, name: str, steps: int) -> dict[str, Any]:
        state, config = self._args(name, steps)
        result: dict[str, Any] = await self._graphs[name].ainvoke(state, config)
        return result

    async def _many(self, name: str, steps: int, count: int) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self._call(name, steps) for _ in range(count))))
