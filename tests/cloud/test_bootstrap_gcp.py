"""build_gcp / build_runtime wiring (no emulator: nothing connects at build time) and
the lifecycle publisher over the local bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.adapters.cloud_tasks_queue import CloudTasksQueue
from shared.adapters.firestore_feed import FirestoreWatchFeed
from shared.adapters.local_bus import LocalEventBus
from shared.adapters.pubsub_bus import LifecyclePublisher, PubSubEventBus, encode_data
from shared.adapters.store_feed import StoreFeed
from shared.app.service import StartRequest
from shared.composition import GcpRuntime, LocalRuntime, Runtime, build_local, build_runtime
from shared.errors import InputInvalid
from shared.models import ExecutionEvent
from shared.settings import GcpSettings, Settings

GCP = {
    "backend": "gcp",
    "project": "demo",
    "location": "europe-west1",
    "tasks_queue": "steps",
    "execute_step_url": "https://execute-step.example.run.app",
    "tasks_service_account": "tasks@demo.iam.gserviceaccount.com",
    "lifecycle_topic": "wfe-lifecycle",
}


def test_settings_from_the_environment() -> None:
    env = {f"WFE_{k.upper()}": v for k, v in GCP.items()}
    env["WFE_DISPATCH_DEADLINE_SECONDS"] = "120"
    settings = Settings.from_env(env)
    assert (settings.backend, settings.gcp.project, settings.gcp.dispatch_deadline_seconds) == (
        "gcp",
        "demo",
        120.0,
    )
    with pytest.raises(InputInvalid):
        Settings.from_env({"WFE_DISPATCH_DEADLINE_SECONDS": "5"})
    assert Settings.defaults().backend == "local" and Settings.defaults().gcp.project == ""


async def test_build_runtime_picks_the_backend_and_connects_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    runtime = build_runtime(Settings.from_env({}, **GCP))
    assert isinstance(runtime, GcpRuntime)
    assert isinstance(runtime.queue, CloudTasksQueue)
    assert isinstance(runtime.bus, PubSubEventBus)
    assert runtime.queue.config.queue_path == "projects/demo/locations/europe-west1/queues/steps"
    assert runtime.queue._client is None and runtime.bus._client is None
    assert runtime.store._async_client is None, "Firestore: no client before first use"
    assert runtime.lifecycle is not None
    assert runtime.engine.services.event_bus is runtime.bus
    assert runtime.engine.services.executions is runtime.store
    feed = runtime.event_feed()
    assert isinstance(feed, FirestoreWatchFeed) and feed.source is runtime.store
    await runtime.stop()
    local = build_runtime(Settings.local_mode())
    assert isinstance(local, LocalRuntime)
    feed = local.event_feed()
    assert isinstance(feed, StoreFeed) and feed.source is local.store
    await local.stop()


async def test_both_runtimes_share_one_lifecycle() -> None:
    """start/stop/sweep_once come from ``Runtime``; only a long-lived local process
    sweeps by default (a gcp function instance is swept by a Scheduler job)."""
    assert issubclass(LocalRuntime, Runtime) and issubclass(GcpRuntime, Runtime)
    assert LocalRuntime.sweeps_by_default and not GcpRuntime.sweeps_by_default
    local = build_local(Settings.local_mode(), memory=True)
    await local.start(recover=False, sweep=True)
    assert local._sweeper is not None
    assert await local.sweep_once() == 0
    await local.stop()
    assert local._sweeper is None


def test_gcp_settings_that_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(InputInvalid, match="WFE_PROJECT"):
        build_runtime(Settings(backend="gcp", gcp=GcpSettings(execute_step_url="https://x")))
    with pytest.raises(InputInvalid, match="WFE_EXECUTE_STEP_URL"):
        build_runtime(Settings(backend="gcp", gcp=GcpSettings(project="p")))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    runtime = build_runtime(Settings(backend="gcp", gcp=GcpSettings(execute_step_url="https://x")))
    assert isinstance(runtime, GcpRuntime)
    assert runtime.bus.project == "from-env"


def test_message_data_is_compact_json_or_bytes() -> None:
    assert encode_data({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert encode_data(b"\x00raw") == b"\x00raw"
    assert encode_data(None) == b"null"


@pytest.fixture
async def runtime() -> AsyncIterator[LocalRuntime]:
    local = build_local(Settings.local_mode(), memory=True)
    await local.start(recover=False)
    try:
        yield local
    finally:
        await local.stop()


async def test_lifecycle_events_on_the_local_bus(runtime: LocalRuntime) -> None:
    bus = LocalEventBus()
    lifecycle = LifecyclePublisher(bus, "lifecycle")
    runtime.store.add_listener(lifecycle)
    definition = await runtime.app.create_workflow(
        {"name": "w", "steps": [{"id": "s", "type": "transform", "config": {"output": 1}}]}
    )
    execution = await runtime.app.start_execution(StartRequest(definition.id, {}))
    assert await runtime.queue.join(timeout=10)
    assert await lifecycle.drain(timeout=10)
    messages = bus.messages("lifecycle")
    assert [m.attributes["eventType"] for m in messages] == [
        "execution.started",
        "step.succeeded",
        "execution.succeeded",
    ]
    assert {m.attributes["executionId"] for m in messages} == {execution.id}
    assert lifecycle.published == 3 and lifecycle.failed == 0


async def test_a_failing_lifecycle_publish_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(LocalEventBus):
        async def publish_many(self, *args: object) -> list[str]:
            raise RuntimeError("topic gone")

    lifecycle = LifecyclePublisher(Broken(), "lifecycle")
    event = ExecutionEvent(execution_id="e", workflow_id="w", seq=1, type="execution.started")
    assert await lifecycle.publish_lifecycle([event]) == 0
    assert lifecycle.failed == 1
    assert "lifecycle event" in caplog.text
