"""Cheap branches and map items run inline in the delivery of their parallel or map step
(claimed in the commit that creates them, recorded together, the join settled in the
commit of the last one), with the same recorded effects as one task per body."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness

from shared.adapters.memory_store import MemoryStore
from shared.adapters.sqlite_store import SqliteStore
from shared.models import ExecutionStatus


@pytest.fixture(params=[("memory", 50), ("sqlite", 50), ("memory", 1), ("sqlite", 3)])
async def hc(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind, chain = request.param
    store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "e.db")
    harness = Harness(store, chain_commit_steps=chain)
    try:
        yield harness
    finally:
        await harness.bus.close()
        await store.close()


def _parallel(branches: int, body: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    names = [f"b{i}" for i in range(branches)]
    steps: list[dict[str, Any]] = [
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["after"],
            "config": {"branches": [{"name": n, "start": n} for n in names]},
        }
    ]
    for index, name in enumerate(names):
        steps.append(
            {
                "id": name,
                "type": "transform",
                "nextSteps": [f"{name}x"],
                "config": {"output": f"${{{index} * 10}}"},
            }
        )
        steps.append({"id": f"{name}x", "type": "transform", "config": {"output": "${prev + 1}"}})
    steps.extend(body or [])
    steps.append({"id": "after", "type": "transform", "config": {"output": "${prev}"}})
    return {"name": "fan", "steps": steps}


async def _once_each(h: Harness, execution_id: str) -> Counter[tuple[str, str | None]]:
    """(event type, run id) counts: every run started and ended exactly once."""
    events = await h.store.list_events(execution_id)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "gap-free event sequence"
    counts = Counter((e.type, e.run_id) for e in events)
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
    return counts


async def test_parallel_branches_run_in_the_parallel_steps_delivery(hc: Harness) -> None:
    execution = await hc.run(_parallel(12))
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == {f"b{i}": i * 10 + 1 for i in range(12)}
    runs = await hc.runs(execution.id)
    assert Counter(r.status.value for r in runs) == Counter({"succeeded": 12 * 2 + 2})
    hops = [r for r in hc.results if r.steps]
    # One delivery (the first hop's start step is the parallel one) ran every body and
    # the step after the join: no task per branch.
    assert len(hops) == 1, [r.steps for r in hc.results]
    assert hops[0].steps[0] == "fan" and hops[0].steps[-1] == "after"
    assert sorted(hops[0].steps) == sorted(r.step_id for r in runs)
    counts = await _once_each(hc, execution.id)
    assert sum(1 for kind, _ in counts if kind == "step.succeeded") == len(runs)
    # Redelivering every task the run ever had changes nothing.
    before = await hc.event_types(execution.id)
    await hc.drain(times=2)
    assert await hc.event_types(execution.id) == before


@pytest.mark.parametrize("bad", [0, 5, 9])
async def test_a_failing_branch_fails_the_parallel_step_once(hc: Harness, bad: int) -> None:
    raw = _parallel(10)
    for step in raw["steps"]:
        if step["id"] == f"b{bad}x":
            step["config"] = {"output": "${prev / 0}"}
    execution = await hc.run(raw)
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_info is not None and execution.error_info.step_id == "fan"
    runs = {r.id: r for r in await hc.runs(execution.id)}
    assert runs[execution.failed_run_id or ""].step_id == f"b{bad}x"
    assert not any(r.step_id == "after" for r in runs.values()), "no join after a failure"
    fan = [r for r in runs.values() if r.step_id == "fan"]
    assert [r.status.value for r in fan] == ["failed"]
    await _once_each(hc, execution.id)


async def test_map_items_run_inline_with_their_window(hc: Harness) -> None:
    workflow_id = await hc.create(
        {
            "name": "m",
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "nextSteps": ["total"],
                    "config": {"items": "input.xs", "start": "sq", "concurrency": 10},
                },
                {"id": "sq", "type": "transform", "config": {"output": "${item * item}"}},
                {"id": "total", "type": "transform", "config": {"output": "${prev}"}},
            ],
        }
    )
    xs = list(range(100))
    execution = await hc.start(workflow_id, {"xs": xs})
    await hc.drain()
    execution = await hc.app.get_execution(execution.id)
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.result == [x * x for x in xs]
    runs = await hc.runs(execution.id)
    assert len(runs) == 102
    await _once_each(hc, execution.id)
    hops = [r for r in hc.results if r.steps]
    assert len(hops) == 1 and len(hops[0].steps) == 102


async def test_a_branch_with_io_still_gets_its_own_task(hc: Harness) -> None:
    raw = _parallel(3)
    raw["steps"][0]["config"]["branches"].append({"name": "io", "start": "io"})
    raw["steps"].insert(1, {"id": "io", "type": "count"})
    execution = await hc.run(raw)
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert set(execution.result) == {"b0", "b1", "b2", "io"}
    assert sum(hc.counter.calls.values()) == 1
    await _once_each(hc, execution.id)


async def test_join_completes_in_the_commit_of_the_last_branch(h: Harness) -> None:
    execution = await h.run(_parallel(4))
    assert execution.status == ExecutionStatus.SUCCEEDED
    events = await h.store.list_events(execution.id)
    runs = {r.id: r for r in await h.runs(execution.id)}
    fan_done = next(
        e for e in events if e.type == "step.succeeded" and runs[e.run_id or ""].step_id == "fan"
    )
    last_branch = max(
        e.seq
        for e in events
        if e.type == "step.succeeded" and runs[e.run_id or ""].step_id.endswith("x")
    )
    assert fan_done.seq == last_branch + 1


async def test_cheap_fan_out_takes_one_transaction_after_the_start(h: Harness) -> None:
    """One transaction claims the parallel step (no I/O: claimed by its commit) and
    records its outcome, every branch, the join and the step after it
    (chain_commit_steps=50 leaves room for all 26). It was two: a claim, then that."""
    workflow_id = await h.create(_parallel(12))
    execution = await h.start(workflow_id)
    calls = 0
    real = h.store.run_transaction

    async def counting(fn: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(fn)

    h.store.run_transaction = counting  # type: ignore[method-assign]
    await h.drain()
    done = await h.app.get_execution(execution.id)
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.result == {f"b{i}": i * 10 + 1 for i in range(12)}
    assert calls == 1
    await _once_each(h, execution.id)
