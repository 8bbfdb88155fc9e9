"""Our engine on the embedded SQLite store (a real file in WAL mode), as a bench variant.

A sample starts executions through ``WorkflowApp.start_execution`` and stops the clock
when the in-process queue is idle, i.e. when every step run is committed. Results are
checked after the clock stops, so a broken run fails the benchmark instead of
producing a fast number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from _workloads import Shape, fanout_definition, linear_definition, map_definition, sqlite_pragmas

from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.models import ExecutionStatus
from shared.settings import Settings

__all__ = ["OursVariant"]

_JOIN_TIMEOUT = 300.0


class BenchFailed(RuntimeError):
    """A workload did not finish, or finished with a wrong result."""


class OursVariant:
    """Our engine with one (synchronous, chain_commit_steps) setting."""

    workloads = frozenset({"linear", "fanout", "wide", "map", "throughput"})

    def __init__(
        self,
        key: str,
        label: str,
        shape: Shape,
        *,
        synchronous: str,
        chain_commit_steps: int,
        workers: int | None = None,
    ) -> None:
        self.key = key
        self.label = label
        self.shape = shape
        workers = workers or Settings.defaults().local.workers
        self.settings: dict[str, Any] = {
            "sqlite_synchronous": synchronous,
            "chain_commit_steps": chain_commit_steps,
            "workers": workers,
            "rate_limits": False,  # measure the engine: a benchmark is one runaway client
        }
        self.info: dict[str, Any] = {"system": "ours", **self.settings}
        self._runtime: LocalRuntime | None = None
        self._stack = contextlib.AsyncExitStack()
        self._workflows: dict[str, str] = {}

    async def open(self, directory: str) -> None:
        settings = Settings.local_mode(os.path.join(directory, f"{self.key}.db"), **self.settings)
        runtime = build_local(settings)
        self._runtime = await self._stack.enter_async_context(runtime)
        # read back what the store's own connection uses (a read-only look inside)
        self.info.update(sqlite_pragmas(runtime.store._conn))  # type: ignore[union-attr]
        shape = self.shape
        for name, definition in (
            ("linear", linear_definition(shape.linear_steps)),
            ("fanout", fanout_definition(shape.fanout_branches)),
            ("wide", fanout_definition(shape.wide_branches, "bench-wide")),
            ("map", map_definition(shape.map_items, shape.map_concurrency)),
            ("small", linear_definition(shape.throughput_steps, "bench-small")),
        ):
            self._workflows[name] = (await runtime.app.create_workflow(definition)).id
        # warm-up (definition cache, expression compilation), not timed
        await self.linear()
        self.info["fanout_step_runs"] = await self._fanout_runs()

    async def close(self) -> None:
        await self._stack.aclose()

    @property
    def runtime(self) -> LocalRuntime:
        assert self._runtime is not None, "open() first"
        return self._runtime

    async def _run(self, workflow: str, count: int) -> tuple[float, list[str]]:
        app = self.runtime.app
        request = StartRequest(self._workflows[workflow], {})
        began = time.perf_counter()
        if count == 1:
            started = [await app.start_execution(request)]
        else:
            started = await asyncio.gather(*(app.start_execution(request) for _ in range(count)))
        if not await self.runtime.queue.join(_JOIN_TIMEOUT):
            raise BenchFailed(f"{self.key}: {workflow} did not finish in {_JOIN_TIMEOUT}s")
        return time.perf_counter() - began, [execution.id for execution in started]

    async def _check(self, execution_ids: list[str], expected_x: int) -> None:
        for execution_id in execution_ids:
            execution = await self.runtime.app.get_execution(execution_id)
            if execution.status != ExecutionStatus.SUCCEEDED or (
                execution.variables.get("x") != expected_x
            ):
                raise BenchFailed(
                    f"{self.key}: execution {execution_id} ended {execution.status}"
                    f" with x={execution.variables.get('x')!r} (expected {expected_x}):"
                    f" {execution.error}"
                )

    async def linear(self) -> float:
        elapsed, ids = await self._run("linear", 1)
        await self._check(ids, self.shape.linear_steps)
        return elapsed

    async def fanout(self) -> float:
        elapsed, ids = await self._run("fanout", 1)
        await self._check(ids, self.shape.fanout_branches)
        return elapsed

    async def wide(self) -> float:
        elapsed, ids = await self._run("wide", 1)
        await self._check(ids, self.shape.wide_branches)
        return elapsed

    async def map(self) -> float:
        elapsed, ids = await self._run("map", 1)
        await self._check(ids, self.shape.map_items)
        return elapsed

    async def _fanout_runs(self) -> int:
        _, ids = await self._run("fanout", 1)
        await self._check(ids, self.shape.fanout_branches)
        return len(await self.runtime.app.step_history(ids[0]))

    async def throughput(self) -> float:
        elapsed, ids = await self._run("small", self.shape.throughput_executions)
        await self._check(ids, self.shape.throughput_steps)
        return elapsed
