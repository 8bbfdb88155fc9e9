"""``make dev`` / ``wfe dev``: the four functions in one process on one port.

Local mode on the embedded store: the management API (REST + GraphQL over HTTP),
execute-step, trigger-handler and status-stream (WebSocket, GraphQL subscriptions,
SSE) share one runtime, one in-process task dispatcher, one event bus and one local
cron scheduler. The demo HTTP service the examples call runs beside it, and the
examples are registered at startup.

With ``WFE_BACKEND=gcp`` (``make dev-emulators``, ``shared/dev/on_emulators.py``) the same
app runs on the cloud runtime (``build_runtime``): Firestore, Cloud Tasks calling back
``/tasks/execute-step`` and Pub/Sub pushing to ``/triggers/pubsub``, the sweeper in
process, and the local cron for schedules (no Scheduler emulator exists).

Routes: ``/api/v1/...``, ``/graphql`` (HTTP: queries and mutations; WebSocket:
``graphql-transport-ws`` subscriptions), ``/ws/...`` and ``/sse/...`` (streams),
``/triggers/...`` (the trigger-handler's routes: ``/triggers/pubsub``,
``/triggers/schedule/{id}``, ``/triggers/webhooks/{id}``), ``/tasks/execute-step``,
``/health``. The internal routes (``/tasks/*``, ``/triggers/pubsub``,
``/triggers/schedule/{id}``) check the caller's ID token as in the cloud: locally one
signed by the dev key (``WFE_DEV_KEY_FILE``; ``wfe dev-token`` prints one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from shared.api.edge import Edge
from shared.api.errors import install_error_handlers
from shared.api.identity import verifier_mode
from shared.api.middleware import CatchAll
from shared.api.rest import create_management_app
from shared.api.rest._audit import with_auth_failure_audit
from shared.api.streams import stream_routes
from shared.api.tasks import create_tasks_app
from shared.api.triggers import create_trigger_app
from shared.app.local_triggers import LocalTriggerBackend
from shared.app.registration import register
from shared.app.trigger_manager import TriggerManager
from shared.composition import LocalRuntime, Runtime, build_runtime
from shared.composition.edge import (
    build_edge,
    build_local_trigger_manager,
    configure_observability,
    require_authentication,
)
from shared.composition.heap import freeze_startup_heap
from shared.dev.demo_service import DemoServer
from shared.engine.validation import parse_documents
from shared.observability import TelemetryMiddleware, uvicorn_log_config
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class DevOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    examples: Path | None = Path("examples")
    demo_port: int | None = 0
    """Port of the demo service (0: a free one); ``None`` disables it."""
    demo_port_fallback: bool = False
    """When ``demo_port`` is taken, take a free port instead of failing (``wfe dev``'s
    default, ``PORT + 1``, may be another process's)."""


@dataclass
class DevServer:
    """The four functions' apps on one port, over one edge, with the demo service.

    The edge (settings, authenticator, runtime) is built when the server starts, from
    the same settings as the functions' (``WFE_API_KEYS`` included), before the app
    serves anything.
    """

    settings: Settings
    options: DevOptions
    runtime: Runtime | None = None
    edge: Edge | None = None
    demo: DemoServer | None = None
    demo_url: str | None = None
    loaded: list[tuple[str, str]] = field(default_factory=list)
    print_banner: bool = False
    _app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self._app is not None, "the dev server is not started"
        await self._app(scope, receive, send)

    def _build_app(self, edge: Edge) -> Starlette:
        allowed = edge.settings.allowed_origins
        app = Starlette(
            routes=[
                Route("/", self._index, methods=["GET"]),
                Mount(
                    "/triggers", with_auth_failure_audit(create_trigger_app(edge, lifespan=False))
                ),
                Mount("/tasks", with_auth_failure_audit(create_tasks_app(edge, lifespan=False))),
                *stream_routes(edge, allowed_origins=allowed, graphql=False, health=False),
                Mount(
                    "",
                    create_management_app(edge, allowed_origins=allowed, lifespan=False),
                ),
            ],
            middleware=[Middleware(CatchAll)],
        )
        install_error_handlers(app)  # a path no app takes: the JSON 404
        return app

    async def _index(self, request: Request) -> Response:
        return JSONResponse(self.links())

    def links(self) -> dict[str, Any]:
        base = f"http://{self.options.host}:{self.options.port}"
        ws = f"ws://{self.options.host}:{self.options.port}"
        return {
            "console": f"{base}/console/",
            "api": f"{base}/api/v1/workflows",
            "openapi": f"{base}/api/v1/openapi.json",
            "docs": f"{base}/api/v1/docs",
            "graphql": f"{base}/graphql",
            "graphqlSubscriptions": f"{ws}/graphql",
            "executionEventsWebSocket": f"{ws}/ws/executions/<executionId>",
            "executionEventsSSE": f"{base}/sse/executions/<executionId>",
            "triggers": {
                "pubsub": f"{base}/triggers/pubsub",
                "schedule": f"{base}/triggers/schedule/<workflowId>",
                "webhook": f"{base}/triggers/webhooks/<workflowId>",
            },
            "demoService": self.demo_url,
            "workflows": [{"name": n, "id": i} for n, i in self.loaded],
        }

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("dev server failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        require_authentication(self.settings)  # gcp mode (dev-emulators) needs keys or the flag
        hosts = list(self.settings.engine.http_allowed_hosts)
        if self.options.demo_port is not None:
            self.demo_url = await self._start_demo(self.options.demo_port)
            hosts.append(self.demo_url.removeprefix("http://"))  # 127.0.0.1:<demo port> only
        engine = self.settings.engine.model_copy(update={"http_allowed_hosts": hosts})
        settings = self.settings.model_copy(update={"engine": engine})
        if self.options.examples is not None and not settings.ai.recordings_dir:
            recordings = str(self.options.examples.resolve())  # the examples' model recordings
            ai = settings.ai.model_copy(update={"recordings_dir": recordings})
            settings = settings.model_copy(update={"ai": ai})
        runtime = build_runtime(settings)  # WFE_BACKEND=gcp: the emulators (dev-emulators)
        if self.demo_url is not None:  # `demoUrl: ""` in a saved definition: the demo service
            runtime.app.variable_defaults["demoUrl"] = self.demo_url
        # A long-lived process sweeps (overdue runs; retention: now and hourly).
        await runtime.start(sweep=True, retention=True)
        self.runtime = runtime
        self.edge = build_edge(settings, runtime=runtime, triggers=dev_trigger_manager(runtime))
        self._app = self._build_app(self.edge)
        await self.edge.start()
        if self.options.examples is not None:
            await self._load_examples(self.options.examples)
        if self.print_banner:
            print(banner(self), file=sys.stderr, flush=True)

    async def _start_demo(self, port: int) -> str:
        try:
            self.demo = DemoServer(port=port)
            return await self.demo.astart()
        except OSError as exc:
            if not self.options.demo_port_fallback or port == 0:
                raise
            log.warning("demo service port %s is taken (%s); using a free port", port, exc)
            self.demo = DemoServer(port=0)
            return await self.demo.astart()

    async def stop(self) -> None:
        if self.edge is not None:
            await self.edge.stop()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.demo is not None:
            await self.demo.astop()

    async def _load_examples(self, folder: Path) -> None:
        assert self.edge is not None
        app = self.edge.app
        definitions = sorted(folder.glob("*.json"))
        definitions = [p for p in definitions if not p.name.endswith(".recording.json")]
        for path in sorted(folder.glob("*.y*ml")) + definitions:  # recordings are model turns
            try:
                documents = parse_documents(path.read_text(), str(path))
                for raw in reversed(documents):  # supporting workflows first
                    definition, _ = await register(app, raw)  # demoUrl: variable_defaults
                    self.loaded.append((definition.name, definition.id))
            except Exception as exc:  # a broken example must not stop the server
                log.warning("example %s not loaded: %s", path, exc)


class _PushedByPubSub:
    """The bus of the gcp-mode triggers: events arrive by Pub/Sub push subscriptions to
    ``/triggers/pubsub``, so subscribing is a no-op."""

    def subscribe(self, topic: str, callback: Any) -> Callable[[], None]:
        return lambda: None


def dev_trigger_manager(runtime: Runtime) -> TriggerManager:
    """Local cron and bus subscriptions; in gcp mode the local cron only (no Scheduler
    emulator exists)."""
    if isinstance(runtime, LocalRuntime):
        return build_local_trigger_manager(runtime)
    backend = LocalTriggerBackend(runtime.app, _PushedByPubSub(), runtime.engine.clock)
    return TriggerManager(runtime.app, backend)


def banner(server: DevServer) -> str:
    links = server.links()
    return "\n".join(
        [
            "",
            f"  Workflow engine ({server.settings.backend} mode) on "
            f"{server.options.host}:{server.options.port}",
            f"  database      {_database(server.settings)}",
            f"  console       {links['console']}  (the web console, in a browser)",
            f"  REST          curl {links['api']}",
            f"  OpenAPI       {links['openapi']}  (Swagger UI: {links['docs']})",
            f"  GraphQL       {links['graphql']}  (open it in a browser for GraphiQL)",
            f"  WebSocket     {links['executionEventsWebSocket']}",
            f"  SSE           curl -N {links['executionEventsSSE']}",
            f"  demo service  {server.demo_url or 'off'}",
            f"  internal      {_internal_note(server.settings)}",
            f"  examples      {len(server.loaded)} workflow(s) loaded: "
            + ", ".join(sorted({name for name, _ in server.loaded})),
            "",
            "  Try:  curl -s -X POST "
            f"{links['api']}/<id>/execute -H 'content-type: application/json' -d '{{}}'",
            "",
        ]
    )


def _internal_note(settings: Settings) -> str:
    """How /tasks/* and the Pub/Sub and schedule routes check their callers."""
    mode = verifier_mode(settings)
    if mode == "none":
        return "/tasks/*, /triggers/pubsub, /triggers/schedule/* check NO caller (emulators)"
    if mode == "google":
        return "/tasks/*, /triggers/pubsub, /triggers/schedule/* need Google-signed ID tokens"
    how = "wfe dev-token" if settings.dev_key_file else "set WFE_DEV_KEY_FILE, then wfe dev-token"
    return f"/tasks/*, /triggers/pubsub, /triggers/schedule/* need a dev ID token ({how})"


def _database(settings: Settings) -> str:
    if settings.backend != "gcp":
        return settings.local.db_path
    host = os.environ.get("FIRESTORE_EMULATOR_HOST", "")
    project = settings.gcp.project or "?"
    return f"Firestore {project}" + (f" on the emulator {host}" if host else "")


def run(settings: Settings, options: DevOptions) -> int:
    """Serve until interrupted (uvicorn, one worker)."""
    import uvicorn

    configure_observability("wfe-dev", settings)
    server = DevServer(settings, options, print_banner=True)
    freeze_startup_heap()  # built: out of the collector's way (shared.composition.heap)
    uvicorn.run(
        TelemetryMiddleware(server, service="wfe-dev"),
        host=options.host,
        port=options.port,
        log_config=uvicorn_log_config("wfe-dev"),
        log_level=settings.log_level.lower(),
        access_log=False,  # TelemetryMiddleware logs each request, inside its trace
        lifespan="on",
        ws="websockets-sansio",
        # Events are a few hundred bytes: compressing each frame once per subscriber
        # cost a fifth of the loop with 100 subscribers (bench/api.py) for little gain.
        ws_per_message_deflate=False,
    )
    return 0


@contextlib.asynccontextmanager
async def running(settings: Settings, options: DevOptions) -> AsyncIterator[DevServer]:
    """Start and stop the dev app in-process (tests)."""
    server = DevServer(settings, options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
