"""One execution is one trace: the trace context rides in task payloads, Cloud Tasks
headers and Pub/Sub attributes, and every step delivery continues it."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_fixtures import invoker_headers
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcAsyncIOTransport
from grpc import aio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.adapters.clock import ManualClock
from shared.adapters.cloud_tasks_queue import CloudTasksConfig, CloudTasksQueue
from shared.adapters.local_queue import LocalTaskQueue
from shared.adapters.pubsub_bus import _message
from shared.api.triggers import create_trigger_app
from shared.app.service import StartRequest
from shared.composition import build_local
from shared.composition.edge import build_edge
from shared.models import ExecutionStatus
from shared.observability import (
    current_traceparent,
    start_span,
    traceparent_context,
    use_tracer_provider,
)
from shared.ports import StepTask
from shared.settings import Settings
from shared.task_codec import decode_task, encode_task

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE}-b7ad6b7169203331-01"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN = "0123456789abcdef0123456789abcdef"

HOPS = {
    "name": "hops",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["w1"]},
        {"id": "w1", "type": "wait", "config": {"seconds": 0.05}, "nextSteps": ["fan"]},
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["w2"],
            "config": {"branches": [{"name": "l", "start": "l1"}, {"name": "r", "start": "r1"}]},
        },
        {"id": "l1", "type": "transform", "config": {"set": {"l": 1}}},
        {"id": "r1", "type": "transform", "config": {"set": {"r": 1}}},
        {"id": "w2", "type": "wait", "config": {"seconds": 0.05}, "nextSteps": ["z"]},
        {"id": "z", "type": "transform", "config": {"set": {"done": True}}},
    ],
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span of the test, recorded in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(previous)
        provider.shutdown()


def step_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("step ")]


async def test_an_execution_with_task_hops_is_one_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    runtime = build_local(Settings.from_env({"WFE_DB_PATH": str(tmp_path / "t.db")}))
    async with runtime:
        workflow = await runtime.app.create_workflow(HOPS)
        with start_span("POST /api/v1/workflows/x/execute", parent=traceparent_context(CALLER)):
            execution = await runtime.app.start_execution(StartRequest(workflow.id, {}))
        for _ in range(200):
            execution = await runtime.app.get_execution(execution.id)
            if execution.status.terminal:
                break
            await asyncio.sleep(0.02)
        await runtime.queue.join(5)
    assert execution.status == ExecutionStatus.SUCCEEDED
    deliveries = step_spans(spans)
    names = {s.name for s in deliveries}
    # The parallel step (no I/O) and its cheap branches (transforms) run in the delivery
    # that ends the wait before them, not as hops of their own.
    assert {"step a", "step w1", "step w2"} <= names, names
    assert not {"step fan", "step l1", "step r1"} & names, names
    assert len(deliveries) >= 5, "each wait is a real hop, twice (it parks, then wakes)"
    assert {f"{s.context.trace_id:032x}" for s in deliveries} == {TRACE}
    for span in deliveries:
        assert span.parent is not None and span.parent.is_remote, "parented by the task's context"
        assert span.attributes is not None
        assert span.attributes["wfe.execution.id"] == execution.id
        assert span.attributes["wfe.tenant"] == execution.tenant
    by_id = {s.context.span_id for s in spans.get_finished_spans()}
    chained = [s for s in deliveries if s.parent is not None and s.parent.span_id in by_id]
    assert len(chained) == len(deliveries), "each hop's parent is a span of this trace"
    transactions = [s for s in spans.get_finished_spans() if s.name == "store.transaction"]
    assert transactions and {s.context.trace_id for s in transactions} == {int(TRACE, 16)}


async def test_the_local_queue_delivers_in_the_enqueuers_trace() -> None:
    seen: list[str | None] = []

    async def handler(task: StepTask) -> None:
        seen.append(current_traceparent())

    queue = LocalTaskQueue(handler, workers=1)
    async with queue:
        with start_span("enqueue", parent=traceparent_context(CALLER)):
            await queue.enqueue(StepTask("e", "r1", datetime.now(UTC)))
            stamped = current_traceparent()
        await queue.enqueue(StepTask("e", "r2", datetime.now(UTC), trace=CALLER))
        assert await queue.join(5)
    assert seen[0] == stamped, "an untraced task gets the enqueuer's context"
    assert seen[1] == CALLER


# -- the wire: task bodies, Cloud Tasks requests, Pub/Sub attributes --------------------


def test_a_task_body_carries_the_traceparent() -> None:
    task = StepTask("exec-1", RUN, NOW, wake_seq=3, trace=CALLER)
    body = encode_task(task)
    assert json.loads(body)["traceparent"] == CALLER
    decoded = decode_task(body)
    assert decoded.trace == CALLER
    assert decoded == StepTask("exec-1", RUN, decoded.due_at, 3), "trace is not identity"
    assert decoded.name == StepTask("exec-1", RUN, NOW, 3).name


def test_old_bodies_and_bad_traceparents_still_decode() -> None:
    old = b'{"executionId":"exec-1","runId":"' + RUN.encode() + b'","wakeSeq":0}'
    assert decode_task(old).trace is None
    untraced = encode_task(StepTask("exec-1", RUN, NOW))
    assert b"traceparent" not in untraced and untraced == old
    for bad in ("nonsense", 7, f"ff-{TRACE}-b7ad6b7169203331-01"):
        body = json.dumps({"executionId": "e", "runId": "r", "traceparent": bad}).encode()
        assert decode_task(body).trace is None


def _queue() -> CloudTasksQueue:
    config = CloudTasksConfig(
        queue_path="projects/demo/locations/europe-west1/queues/steps",
        url="https://execute-step.example.com/",
        emulator_host="127.0.0.1:1",  # never dialled: only the request is built
    )
    return CloudTasksQueue(config, clock=ManualClock(NOW))


def test_a_cloud_task_carries_the_trace_in_body_and_header() -> None:
    built = _queue().build_task(StepTask("exec-1", RUN, NOW, trace=CALLER))
    assert built.http_request.headers["traceparent"] == CALLER
    assert decode_task(built.http_request.body).trace == CALLER


def test_an_untraced_task_takes_the_current_span() -> None:
    queue = _queue()
    assert "traceparent" not in queue.build_task(StepTask("e", RUN, NOW)).http_request.headers
    with start_span("start", parent=traceparent_context(CALLER)):
        built = queue.build_task(StepTask("e", RUN, NOW))
        current = current_traceparent()
    assert built.http_request.headers["traceparent"] == current
    assert decode_task(built.http_request.body).trace == current


def test_pubsub_messages_carry_the_publishers_trace() -> None:
    with start_span("publish", parent=traceparent_context(CALLER)):
        message = _message({"a": 1}, {"eventType": "x"}, "key-1")
        current = current_traceparent()
        kept = _message({}, {"traceparent": CALLER}, "")
    assert message.attributes["traceparent"] == current
    assert message.attributes["dedupKey"] == "key-1"
    assert kept.attributes["traceparent"] == CALLER, "an explicit one is kept"
    assert "traceparent" not in _message({}, {}, "").attributes


# -- the Cloud Tasks emulator: the header and the body arrive ---------------------------


class _Recorder(ThreadingHTTPServer):
    received: list[tuple[dict[str, str], bytes]]
    arrived: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.emulator
async def test_the_emulator_delivers_the_trace(tasks_emulator_host: str) -> None:
    transport = CloudTasksGrpcAsyncIOTransport(channel=aio.insecure_channel(tasks_emulator_host))
    client = tasks_v2.CloudTasksAsyncClient(transport=transport)
    parent = "projects/trace-hops/locations/us-central1"
    try:
        created = await client.create_queue(
            parent=parent, queue=tasks_v2.Queue(name=f"{parent}/queues/q{RUN[:8]}")
        )
    finally:
        await transport.close()
    server = _Recorder(("127.0.0.1", 0), _Handler)
    server.received, server.arrived = [], threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    queue = CloudTasksQueue(
        CloudTasksConfig(
            queue_path=str(created.name),
            url=f"http://127.0.0.1:{server.server_address[1]}/",
            emulator_host=tasks_emulator_host,
        )
    )
    try:
        await queue.enqueue(StepTask("exec-1", RUN, datetime.now(UTC), trace=CALLER))
        assert await asyncio.to_thread(server.arrived.wait, 20)
    finally:
        await queue.close()
        server.shutdown()
        server.server_close()
    headers, body = server.received[0]
    assert headers["traceparent"] == CALLER
    assert decode_task(body).trace == CALLER


async def test_an_execution_a_message_starts_continues_the_publishers_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """A Pub/Sub message carrying a ``traceparent`` attribute (what the bus stamps on a
    publish step's message) starts an execution in the publisher's trace."""
    runtime = build_local(Settings.from_env({"WFE_DB_PATH": str(tmp_path / "t.db")}))
    flow = {
        "name": "on-orders",
        "trigger": {"type": "event", "topic": "orders"},
        "steps": [{"id": "seen", "type": "transform", "config": {"set": {"n": 1}}}],
    }
    async with runtime:
        edge = build_edge(runtime.settings, runtime=runtime)
        await edge.start()
        workflow = await runtime.app.create_workflow(flow)
        message = {
            "message": {
                "data": base64.b64encode(b'{"id": 1}').decode(),
                "attributes": {"traceparent": CALLER},
                "messageId": "m-1",
            },
            "subscription": "projects/demo/subscriptions/orders",
        }
        transport = httpx.ASGITransport(app=create_trigger_app(edge, lifespan=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = invoker_headers(edge, "pubsub")
            answer = await client.post("/pubsub?topic=orders", json=message, headers=headers)
        assert answer.status_code == 200, answer.text
        listed = await runtime.app.list_executions(workflow_id=workflow.id)
        [execution] = listed.items
        for _ in range(200):
            execution = await runtime.app.get_execution(execution.id)
            if execution.status.terminal:
                break
            await asyncio.sleep(0.02)
        await runtime.queue.join(5)
        await edge.stop()
    assert execution.status == ExecutionStatus.SUCCEEDED
    deliveries = step_spans(spans)
    assert [s.name for s in deliveries] == ["step seen"]
    assert {f"{s.context.trace_id:032x}" for s in deliveries} == {TRACE}
