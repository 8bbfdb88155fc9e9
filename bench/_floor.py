"""The floor: a bare SQLite WAL loop doing one INSERT + COMMIT per step.

No engine and no serialization beyond a short row, so it shows what a durable commit
costs on this disk at a given ``synchronous`` level. The shapes are timed as their
commits: ``linear`` is one commit per step, ``fanout`` one per step of the fan-out
(branches + 2), ``throughput`` one per step of every execution, one after another.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from _workloads import Shape, sqlite_pragmas

__all__ = ["FloorVariant"]


class FloorVariant:
    """INSERT + COMMIT per step on a WAL file with the given ``synchronous`` level."""

    workloads = frozenset({"linear", "fanout", "wide", "map", "throughput"})

    def __init__(self, key: str, label: str, shape: Shape, *, synchronous: str) -> None:
        self.key, self.label, self.shape = key, label, shape
        self.synchronous = synchronous
        self.info: dict[str, Any] = {
            "system": "sqlite",
            "sqlite_synchronous": synchronous,
            "api": "INSERT + COMMIT per step",
        }
        self._conn: sqlite3.Connection | None = None
        self._seq = 0

    async def open(self, directory: str) -> None:
        conn = sqlite3.connect(os.path.join(directory, f"{self.key}.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self.info.update(sqlite_pragmas(conn))
        conn.execute(
            "CREATE TABLE steps (execution TEXT NOT NULL, seq INTEGER NOT NULL,"
            " x INTEGER NOT NULL, PRIMARY KEY (execution, seq))"
        )
        self._conn = conn
        self._commits(self.shape.linear_steps)  # warm-up

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _commits(self, count: int, per_execution: int | None = None) -> float:
        """Seconds for ``count`` commits of one row each."""
        conn = self._conn
        assert conn is not None, "open() first"
        per_execution = per_execution or count
        began = time.perf_counter()
        for index in range(count):
            self._seq += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO steps (execution, seq, x) VALUES (?, ?, ?)",
                (f"e{self._seq // per_execution}", self._seq, index % per_execution),
            )
            conn.execute("COMMIT")
        return time.perf_counter() - began

    async def linear(self) -> float:
        return self._commits(self.shape.linear_steps)

    async def fanout(self) -> float:
        return self._commits(self.shape.fanout_steps)

    async def wide(self) -> float:
        return self._commits(self.shape.wide_steps)

    async def map(self) -> float:
        return self._commits(self.shape.map_steps)

    async def throughput(self) -> float:
        shape = self.shape
        return self._commits(
            shape.throughput_executions * shape.throughput_steps, shape.throughput_steps
        )
