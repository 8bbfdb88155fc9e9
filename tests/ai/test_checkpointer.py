"""StoreCheckpointSaver: LangGraph's checkpointer contract, checked differentially
against LangGraph's own InMemorySaver (the installed packages ship no conformance
suite), and real graphs that crash, resume, interrupt and stay isolated per thread."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from checkpoint_stores import STORES, store_params
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from shared.adapters.sqlite_checkpoints import SqliteCheckpointStore
from shared.ai.checkpointer import StoreCheckpointSaver
from shared.ports.checkpoints import thread_id_for


@pytest.fixture(params=store_params())
async def saver(request: pytest.FixtureRequest) -> AsyncIterator[StoreCheckpointSaver]:
    async with STORES[request.param](request) as store:
        yield StoreCheckpointSaver(store)


# --- the differential suite: the same calls on InMemorySaver and on ours ---

T1 = thread_id_for("exec-1", "run-a")
T2 = thread_id_for("exec-1", "run-b")
T3 = thread_id_for("exec-2", "run-a")


def _checkpoint(values: dict[str, Any], versions: dict[str, str], n: int, tag: str) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = f"1f0-{tag}-{n:04d}"  # both savers see the same ids
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    checkpoint["versions_seen"] = {"node": {k: v for k, v in versions.items()}}
    checkpoint["ts"] = f"2026-01-01T00:00:{n:02d}+00:00"
    return checkpoint


async def _put_chain(
    saver: BaseCheckpointSaver[Any], thread_id: str, ns: str, steps: int, tag: str
) -> list[RunnableConfig]:
    """A chain of ``steps`` checkpoints, each writing channel ``a`` (and ``b`` on odd
    steps), with metadata that filters can select."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    values: dict[str, Any] = {}
    versions: dict[str, str] = {}
    made = []
    for step in range(steps):
        new: dict[str, str] = {"a": saver.get_next_version(versions.get("a"), None)}
        values["a"] = [tag, step]
        if step % 2:
            new["b"] = saver.get_next_version(versions.get("b"), None)
            values["b"] = {"step": step, "tag": tag}
        versions.update(new)
        metadata: dict[str, Any] = {
            "source": "loop" if step else "input",
            "step": step,
            "writes": {"node": step},
            "parents": {},
            "tag": tag,
        }
        config = await saver.aput(
            config,
            _checkpoint(values, versions, step, tag),
            metadata,
            new,  # type: ignore[arg-type]
        )
        made.append(config)
    return made


def _normal(found: CheckpointTuple | None) -> Any:
    """A tuple without what legitimately differs between savers (version strings are
    random tie-breakers; compare the checkpoint's other fields)."""
    if found is None:
        return None
    checkpoint = dict(sorted(found.checkpoint.items()))  # key order differs (reprs compared)
    checkpoint["channel_versions"] = sorted(checkpoint["channel_versions"])
    checkpoint["versions_seen"] = {k: sorted(v) for k, v in checkpoint["versions_seen"].items()}
    return (found.config, checkpoint, found.metadata, found.parent_config, found.pending_writes)


Scenario = Callable[[BaseCheckpointSaver[Any]], Awaitable[Any]]


async def _scenario_chains(saver: BaseCheckpointSaver[Any]) -> Any:
    c1 = await _put_chain(saver, T1, "", 4, "t1")
    await _put_chain(saver, T1, "sub:1", 2, "t1sub")
    await _put_chain(saver, T2, "", 3, "t2")
    latest = await saver.aget_tuple({"configurable": {"thread_id": T1, "checkpoint_ns": ""}})
    by_id = await saver.aget_tuple(c1[1])
    sub = await saver.aget_tuple({"configurable": {"thread_id": T1, "checkpoint_ns": "sub:1"}})
    missing = await saver.aget_tuple({"configurable": {"thread_id": T3, "checkpoint_ns": ""}})
    unknown = await saver.aget_tuple(
        {"configurable": {"thread_id": T1, "checkpoint_ns": "", "checkpoint_id": "nope"}}
    )
    return [_normal(t) for t in (latest, by_id, sub, missing, unknown)]


async def _listing(saver: BaseCheckpointSaver[Any], config: Any, **kwargs: Any) -> list[Any]:
    return [_normal(t) async for t in saver.alist(config, **kwargs)]


async def _scenario_lists(saver: BaseCheckpointSaver[Any]) -> Any:
    c1 = await _put_chain(saver, T1, "", 5, "t1")
    await _put_chain(saver, T1, "sub:1", 2, "t1sub")
    await _put_chain(saver, T2, "", 3, "t2")
    thread = {"configurable": {"thread_id": T1}}
    root = {"configurable": {"thread_id": T1, "checkpoint_ns": ""}}
    everything = await _listing(saver, None)
    return [
        # across namespaces and threads InMemorySaver orders by insertion, the SQLite
        # savers (and ours) by checkpoint id: compared as sets
        sorted(repr(t) for t in await _listing(saver, thread)),
        await _listing(saver, root),
        await _listing(saver, root, limit=2),
        await _listing(saver, root, limit=0),
        await _listing(saver, root, before=c1[3]),
        await _listing(saver, root, before=c1[3], limit=1),
        await _listing(saver, root, filter={"source": "loop"}),
        await _listing(saver, root, filter={"source": "loop"}, limit=2),
        await _listing(saver, root, filter={"step": 2, "tag": "t1"}),
        await _listing(saver, root, filter={"tag": "t2"}),
        await _listing(saver, None, filter={"tag": "t2"}),
        await _listing(saver, c1[2]),
        sorted(repr(t) for t in everything),
    ]


async def _scenario_writes(saver: BaseCheckpointSaver[Any]) -> Any:
    c1 = await _put_chain(saver, T1, "", 2, "t1")
    at = c1[-1]
    await saver.aput_writes(at, [("a", 1), ("b", {"x": 2})], "task-2", "~__pregel_pull, b")
    await saver.aput_writes(at, [("a", 10)], "task-1", "~__pregel_pull, a")
    # a retried task does not change regular writes...
    await saver.aput_writes(at, [("a", 99), ("b", 98)], "task-2", "~__pregel_pull, b")
    # ...but special channels keep the latest
    await saver.aput_writes(at, [("__error__", "first")], "task-3", "~__pregel_pull, c")
    await saver.aput_writes(at, [("__error__", "second")], "task-3", "~__pregel_pull, c")
    await saver.aput_writes(at, [("__interrupt__", ["ask"])], "task-4", "")
    await saver.aput_writes(c1[0], [("a", "old")], "task-0", "")
    return [
        _normal(await saver.aget_tuple(at)),
        _normal(await saver.aget_tuple(c1[0])),
        _normal(await saver.aget_tuple({"configurable": {"thread_id": T1, "checkpoint_ns": ""}})),
        sorted(repr(t) for t in await _listing(saver, {"configurable": {"thread_id": T1}})),
    ]


async def _scenario_delete(saver: BaseCheckpointSaver[Any]) -> Any:
    c1 = await _put_chain(saver, T1, "", 3, "t1")
    await _put_chain(saver, T1, "sub:1", 2, "t1sub")
    c2 = await _put_chain(saver, T2, "", 2, "t2")
    await saver.aput_writes(c1[-1], [("a", 1)], "task", "")
    await saver.aput_writes(c2[-1], [("a", 2)], "task", "")
    await saver.adelete_thread(T1)
    return [
        await _listing(saver, {"configurable": {"thread_id": T1}}),
        await _listing(saver, {"configurable": {"thread_id": T2}}),
        _normal(await saver.aget_tuple(c1[-1])),
        _normal(await saver.aget_tuple(c2[-1])),
    ]


SCENARIOS: dict[str, Scenario] = {
    "chains": _scenario_chains,
    "lists": _scenario_lists,
    "writes": _scenario_writes,
    "delete": _scenario_delete,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_behaves_as_langgraphs_in_memory_saver(
    saver: StoreCheckpointSaver, scenario: str
) -> None:
    expected = await SCENARIOS[scenario](InMemorySaver())
    got = await SCENARIOS[scenario](saver)
    assert got == expected
    assert any(part not in (None, []) for part in expected)  # the scenario saw something


async def test_scenarios_tell_savers_apart(saver: StoreCheckpointSaver) -> None:
    """The comparison can fail: a saver that drops pending writes differs."""

    class Forgetful(InMemorySaver):
        async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
            return None

    assert await _scenario_writes(Forgetful()) != await _scenario_writes(saver)


async def test_delete_for_execution_removes_its_threads_only(saver: StoreCheckpointSaver) -> None:
    c1 = await _put_chain(saver, T1, "", 2, "t1")
    await _put_chain(saver, T2, "sub:1", 2, "t2")
    c3 = await _put_chain(saver, T3, "", 2, "t3")
    await saver.aput_writes(c1[-1], [("a", 1)], "task", "")
    await saver.aput_writes(c3[-1], [("a", 3)], "task", "")
    assert await saver.adelete_for_execution("exec-1") == 4
    assert [t async for t in saver.alist({"configurable": {"thread_id": T1}})] == []
    assert [t async for t in saver.alist({"configurable": {"thread_id": T2}})] == []
    kept = await saver.aget_tuple(c3[-1])
    assert kept is not None and kept.pending_writes == [("task", "a", 3)]
    assert await saver.adelete_for_execution("exec-1") == 0


async def test_thread_ids_must_name_execution_and_run(saver: StoreCheckpointSaver) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "no-run", "checkpoint_ns": ""}}
    with pytest.raises(ValueError, match="execution_id"):
        await saver.aput(config, empty_checkpoint(), {}, {})
    with pytest.raises(ValueError):
        thread_id_for("a/b", "run")


async def test_sync_calls_run_from_another_thread_only(saver: StoreCheckpointSaver) -> None:
    made = await _put_chain(saver, T1, "", 2, "t1")
    latest: RunnableConfig = {"configurable": {"thread_id": T1, "checkpoint_ns": ""}}
    with pytest.raises(asyncio.InvalidStateError, match="async"):
        saver.get_tuple(latest)
    found = await asyncio.to_thread(saver.get_tuple, latest)
    assert found is not None and found.config == made[-1]
    listed = await asyncio.to_thread(lambda: list(saver.list(latest)))
    assert [t.config for t in listed] == made[::-1]
    await asyncio.to_thread(saver.delete_thread, T1)
    assert await saver.aget_tuple(latest) is None


# --- real graphs ---


class Progress(TypedDict):
    visited: Annotated[list[str], operator.add]


def _three_nodes(calls: dict[str, int], fail_once: set[str]) -> StateGraph[Progress]:
    def node(name: str) -> Callable[[Progress], dict[str, list[str]]]:
        def run(state: Progress) -> dict[str, list[str]]:
            calls[name] = calls.get(name, 0) + 1
            if name in fail_once:
                fail_once.discard(name)
                raise RuntimeError(f"{name} crashed")
            return {"visited": [name]}

        return run

    graph = StateGraph(Progress)
    for name in ("first", "second", "third"):
        graph.add_node(name, node(name))
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", "third")
    graph.add_edge("third", END)
    return graph


def _run_config(execution_id: str, run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id_for(execution_id, run_id)}}


async def test_a_crashed_graph_resumes_without_rerunning_completed_nodes(
    saver: StoreCheckpointSaver,
) -> None:
    calls: dict[str, int] = {}
    graph = _three_nodes(calls, fail_once={"second"}).compile(checkpointer=saver)
    config = _run_config("exec-1", "run-1")
    with pytest.raises(RuntimeError, match="second crashed"):
        await graph.ainvoke({"visited": []}, config)
    state = await graph.aget_state(config)
    assert state.values == {"visited": ["first"]} and state.next == ("second",)
    result = await graph.ainvoke(None, config)
    assert result == {"visited": ["first", "second", "third"]}
    assert calls == {"first": 1, "second": 2, "third": 1}


async def test_sqlite_checkpoints_survive_the_process(tmp_path: Path) -> None:
    """A second saver on the same file (a new process after a crash) resumes the run."""
    calls: dict[str, int] = {}
    config = _run_config("exec-1", "run-1")
    first = SqliteCheckpointStore(tmp_path / "store.db")
    graph = _three_nodes(calls, fail_once={"third"}).compile(
        checkpointer=StoreCheckpointSaver(first)
    )
    with pytest.raises(RuntimeError, match="third crashed"):
        await graph.ainvoke({"visited": []}, config)
    await first.close()
    second = SqliteCheckpointStore(tmp_path / "store.db")
    try:
        graph = _three_nodes(calls, fail_once=set()).compile(
            checkpointer=StoreCheckpointSaver(second)
        )
        assert await graph.ainvoke(None, config) == {"visited": ["first", "second", "third"]}
    finally:
        await second.close()
    assert calls == {"first": 1, "second": 1, "third": 2}


class Fanout(TypedDict):
    done: Annotated[list[str], operator.add]


async def test_a_parallel_branch_that_succeeded_is_not_rerun(saver: StoreCheckpointSaver) -> None:
    """The successful branch's pending writes are kept when its sibling crashes."""
    calls: dict[str, int] = {}
    fail = {"right"}

    def branch(name: str) -> Callable[[Fanout], dict[str, list[str]]]:
        def run(state: Fanout) -> dict[str, list[str]]:
            calls[name] = calls.get(name, 0) + 1
            if name in fail:
                fail.discard(name)
                raise RuntimeError("right crashed")
            return {"done": [name]}

        return run

    builder = StateGraph(Fanout)
    builder.add_node("left", branch("left"))
    builder.add_node("right", branch("right"))
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    graph = builder.compile(checkpointer=saver)
    config = _run_config("exec-1", "run-1")
    with pytest.raises(RuntimeError):
        await graph.ainvoke({"done": []}, config)
    result = await graph.ainvoke(None, config)
    assert sorted(result["done"]) == ["left", "right"]
    assert calls == {"left": 1, "right": 2}


class Approval(TypedDict, total=False):
    proposal: str
    decision: str
    after: str


async def test_interrupt_and_resume_round_trip(saver: StoreCheckpointSaver) -> None:
    calls: dict[str, int] = {}

    def propose(state: Approval) -> Approval:
        calls["propose"] = calls.get("propose", 0) + 1
        return {"proposal": "send mail"}

    def ask(state: Approval) -> Approval:
        answer = interrupt({"question": "approve?", "proposal": state["proposal"]})
        return {"decision": str(answer)}

    def finish(state: Approval) -> Approval:
        calls["finish"] = calls.get("finish", 0) + 1
        return {"after": f"{state['proposal']}: {state['decision']}"}

    builder = StateGraph(Approval)
    builder.add_node("propose", propose)
    builder.add_node("ask", ask)
    builder.add_node("finish", finish)
    builder.add_edge(START, "propose")
    builder.add_edge("propose", "ask")
    builder.add_edge("ask", "finish")
    graph = builder.compile(checkpointer=saver)
    config = _run_config("exec-1", "run-1")
    paused = await graph.ainvoke({}, config)
    assert paused["__interrupt__"][0].value == {"question": "approve?", "proposal": "send mail"}
    state = await graph.aget_state(config)
    assert state.next == ("ask",) and state.interrupts
    done = await graph.ainvoke(Command(resume="approved"), config)
    assert done["after"] == "send mail: approved"
    assert calls == {"propose": 1, "finish": 1}


async def test_threads_of_different_runs_never_mix(saver: StoreCheckpointSaver) -> None:
    calls: dict[str, int] = {}
    graph = _three_nodes(calls, fail_once=set()).compile(checkpointer=saver)
    one, two = _run_config("exec-1", "run-1"), _run_config("exec-1", "run-2")
    await graph.ainvoke({"visited": ["one"]}, one)
    await graph.ainvoke({"visited": ["two"]}, two)
    first = (await graph.aget_state(one)).values["visited"]
    second = (await graph.aget_state(two)).values["visited"]
    assert first == ["one", "first", "second", "third"]
    assert second == ["two", "first", "second", "third"]
    histories = [[s async for s in graph.aget_state_history(c)] for c in (one, two)]
    for history, config in zip(histories, (one, two), strict=True):
        assert history
        assert {s.config["configurable"]["thread_id"] for s in history} == {
            config["configurable"]["thread_id"]
        }
    await saver.adelete_thread(one["configurable"]["thread_id"])
    assert (await graph.aget_state(one)).values == {}
    assert (await graph.aget_state(two)).values["visited"][0] == "two"
