"""Transaction bodies run again on contention (Firestore does): starting an execution
whose first attempt was discarded writes it once, with ``execution.started`` at seq 1.

Found by the gcp end-to-end test: a Pub/Sub message pushed twice made two
trigger-handler calls race, the store ran the start body again, and the reused
execution object gave its first event seq 2.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.app.service import StartRequest
from shared.composition import build_local
from shared.ports import ExecutionTx

T = TypeVar("T")

WORKFLOW = {
    "name": "rerun",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"output": "${vars.x}"}},
    ],
}


class _Discarded(Exception):
    pass


async def test_a_rerun_start_body_writes_the_execution_once() -> None:
    runtime = build_local(memory=True)
    store = runtime.store
    plain = store.run_transaction
    reruns: list[int] = []

    async def rerun_once(fn: Callable[[ExecutionTx], Awaitable[T]]) -> T:
        """Run ``fn``, throw its writes away (contention), run it again for real."""

        async def discarded(tx: ExecutionTx) -> T:
            await fn(tx)
            raise _Discarded

        try:
            await plain(discarded)
        except _Discarded:
            reruns.append(1)
        return await plain(fn)

    store.run_transaction = rerun_once  # type: ignore[method-assign]
    store.reruns_transactions = True  # as Firestore declares
    try:
        definition = await runtime.app.create_workflow(WORKFLOW)
        request = StartRequest(definition.id, {}, execution_id="ex-1")
        first = await runtime.app.start_execution_once(request)
        again = await runtime.app.start_execution_once(request)
        events = await runtime.app.events("ex-1")
        runs = await runtime.app.step_history("ex-1")
    finally:
        await store.close()
    assert reruns and first.created and not again.created
    assert [(e.seq, e.type) for e in events] == [(1, "execution.started")]
    assert first.execution.event_seq == 1 == again.execution.event_seq
    assert [r.step_id for r in runs] == ["a"] and runs[0].wake_seq == 0
