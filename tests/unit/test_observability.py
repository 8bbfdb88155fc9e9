"""Structured logs and trace context: the JSON lines Cloud Logging reads, and the
request middleware that puts the caller's trace on them."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.observability import (
    SERVER_LOGGERS,
    JsonHandler,
    TelemetryMiddleware,
    bind_log_context,
    configure_logging,
    configure_tracing,
    current_log_fields,
    current_traceparent,
    extract_context,
    inject_context,
    log_context,
    reset_log_context,
    start_span,
    traceparent_context,
    use_tracer_provider,
    uvicorn_log_config,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
CLOUD_TRACE = "105445aa7843bc8bf206b12000100000"

log = logging.getLogger("tests.observability")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the logging setup of the process is restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    servers = {name: logging.getLogger(name) for name in SERVER_LOGGERS}
    saved_servers = {
        name: (list(lg.handlers), lg.propagate, lg.disabled, lg.level)
        for name, lg in servers.items()
    }
    buffer = io.StringIO()
    configure_logging("unit", stream=buffer, project="")
    try:
        yield buffer
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (handlers, propagate, disabled, level) in saved_servers.items():
            servers[name].handlers[:] = handlers
            servers[name].propagate = propagate
            servers[name].disabled = disabled
            servers[name].setLevel(level)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(previous)
        provider.shutdown()


def entries(buffer: io.StringIO, logger: str | None = None) -> list[dict[str, Any]]:
    """The lines written, parsed (only ``logger``'s when given)."""
    parsed = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [e for e in parsed if logger is None or e["logger"] == logger]


def test_a_record_is_one_json_line_in_cloud_loggings_shape(lines: io.StringIO) -> None:
    log.warning("disk %s is %d%% full", "/data", 91, extra={"json_fields": {"disk": "/data"}})
    (entry,) = entries(lines)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "disk /data is 91% full"
    assert entry["logger"] == "tests.observability"
    assert entry["serviceContext"] == {"service": "unit"}
    assert entry["disk"] == "/data", "json_fields are merged into the entry"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "logging.googleapis.com/trace" not in entry, "no span, no trace"


def test_json_fields_do_not_override_the_entrys_own_keys(lines: io.StringIO) -> None:
    log.info("hello", extra={"json_fields": {"severity": "DEBUG", "message": "x", "n": 1}})
    (entry,) = entries(lines)
    assert (entry["severity"], entry["message"], entry["n"]) == ("INFO", "hello", 1)


def test_unserialisable_fields_still_give_one_line(lines: io.StringIO) -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    log.info("odd", extra={"json_fields": {"cycle": cycle, "when": object()}})
    (entry,) = entries(lines)
    assert entry["message"] == "odd"


def test_a_traceback_is_one_entry_with_the_trace_inside(lines: io.StringIO) -> None:
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        log.exception("step %s raised", "charge")
    text = lines.getvalue()
    assert text.count("\n") == 1, "one line for the whole traceback"
    (entry,) = entries(lines)
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("step charge raised\nTraceback (most recent call last):")
    assert "ValueError: bad value\nsecond line" in entry["message"]
    assert entry["@type"].endswith("clouderrorreporting.v1beta1.ReportedErrorEvent")


def test_exc_info_on_a_warning_is_not_an_error_event(lines: io.StringIO) -> None:
    try:
        raise OSError("flaky")
    except OSError as exc:
        log.warning("retrying", exc_info=exc)
    (entry,) = entries(lines)
    assert entry["severity"] == "WARNING" and "OSError: flaky" in entry["message"]
    assert "@type" not in entry


@pytest.mark.parametrize(
    ("level", "severity"),
    [(5, "DEBUG"), (logging.DEBUG, "DEBUG"), (25, "WARNING"), (logging.CRITICAL, "CRITICAL")],
)
def test_levels_map_to_severities(lines: io.StringIO, level: int, severity: str) -> None:
    logging.getLogger().setLevel(1)
    log.log(level, "x")
    assert entries(lines)[0]["severity"] == severity


def test_correlation_fields_come_from_the_log_context(lines: io.StringIO) -> None:
    with log_context(execution_id="exec-1", tenant="acme"):
        with log_context(step_id="charge", run_id="run-9"):
            log.info("inner")
        log.info("outer")
    log.info("none")
    inner, outer, none = entries(lines)
    assert {k: inner[k] for k in ("executionId", "stepId", "runId", "tenant")} == {
        "executionId": "exec-1",
        "stepId": "charge",
        "runId": "run-9",
        "tenant": "acme",
    }
    assert outer["executionId"] == "exec-1" and "stepId" not in outer
    assert "executionId" not in none


def test_bind_and_reset_restore_the_fields() -> None:
    token = bind_log_context(execution_id="e")
    inner = bind_log_context(step_id="s")
    assert dict(current_log_fields()) == {"executionId": "e", "stepId": "s"}
    reset_log_context(inner)
    assert dict(current_log_fields()) == {"executionId": "e"}
    reset_log_context(token)
    assert dict(current_log_fields()) == {}


def test_trace_fields_name_the_project_when_it_is_known(lines: io.StringIO) -> None:
    configure_logging("unit", stream=lines, project="demo-project")
    with start_span("work", parent=traceparent_context(TRACEPARENT)):
        log.info("traced")
        span_id = current_traceparent().split("-")[2]  # type: ignore[union-attr]
    (entry,) = entries(lines)
    assert entry["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == span_id
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_configuring_twice_keeps_one_handler_and_drops_plain_text_ones(
    lines: io.StringIO,
) -> None:
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(io.StringIO()))  # e.g. functions-framework's
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn.propagate = False
    configure_logging("unit", stream=lines, level="debug")
    configure_logging("unit", stream=lines, level="debug")
    ours = [h for h in root.handlers if isinstance(h, JsonHandler)]
    assert len(ours) == 1
    assert not [h for h in root.handlers if type(h) is logging.StreamHandler]
    assert root.level == logging.DEBUG
    uvicorn.error("server trouble")
    (entry,) = entries(lines)
    assert (entry["logger"], entry["severity"]) == ("uvicorn.error", "ERROR")


def test_uvicorn_log_config_routes_its_loggers_to_the_json_handler(lines: io.StringIO) -> None:
    logging.config.dictConfig(uvicorn_log_config("create"))
    for name in ("uvicorn.error", "uvicorn.access"):  # uvicorn.run sets them from log_level
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz", "1.1", 200
    )
    started, access = entries(lines)
    assert started["message"] == "Application startup complete."
    assert access["httpRequest"] == {
        "requestMethod": "GET",
        "requestUrl": "/healthz",
        "protocol": "HTTP/1.1",
        "status": 200,
        "remoteIp": "127.0.0.1",
    }
    assert len([h for h in logging.getLogger().handlers if isinstance(h, JsonHandler)]) == 1


# -- propagation ---------------------------------------------------------------------


def test_inject_and_extract_round_trip() -> None:
    with start_span("hop", parent=extract_context({"Traceparent": TRACEPARENT})):
        carrier = inject_context()
        assert carrier["traceparent"] == current_traceparent()
    assert carrier["traceparent"].split("-")[1] == TRACE
    with start_span("next", parent=extract_context(carrier)):
        assert current_traceparent().split("-")[1] == TRACE  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01-extra",
    ],
)
def test_invalid_traceparents_are_ignored(value: str) -> None:
    assert traceparent_context(value) is None


def test_a_future_version_with_more_fields_is_read() -> None:
    assert traceparent_context(f"01-{TRACE}-{PARENT}-01-what-comes-next") is not None


def test_untraced_work_still_gets_ids() -> None:
    """The default (``none``) tracer records nothing but gives every span ids."""
    previous = use_tracer_provider(None)
    try:
        with start_span("root") as root:
            assert not root.is_recording()
            first = current_traceparent()
            with start_span("child"):
                second = current_traceparent()
        with start_span("child of a sampled caller", parent=traceparent_context(TRACEPARENT)):
            third = current_traceparent()
    finally:
        use_tracer_provider(previous)
    assert first and second and third
    assert first.split("-")[1] == second.split("-")[1] and first != second
    assert first.endswith("-00"), "a root that nothing samples"
    assert third.split("-")[1] == TRACE and third.endswith("-01"), "the caller's sampling kept"


def test_configure_tracing_refuses_unknown_exporters() -> None:
    previous = use_tracer_provider(None)
    try:
        with pytest.raises(ValueError, match="unknown trace exporter"):
            configure_tracing("jaeger", "unit")
    finally:
        use_tracer_provider(previous)


def test_exporters_and_the_sdk_are_imported_only_when_chosen() -> None:
    code = (
        "import sys, shared.observability as o, shared.engine.runtime\n"
        "o.configure_tracing('none', 'x')\n"
        "with o.start_span('s'): pass\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('opentelemetry.sdk', 'opentelemetry.exporter', 'google.cloud.trace'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# -- the request middleware ------------------------------------------------------------


async def _item(request: Request) -> Response:
    log.info("looking up %s", request.path_params["item_id"])
    if request.path_params["item_id"] == "missing":
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse({"traceparent": current_traceparent()})


def _client() -> httpx.AsyncClient:
    app = TelemetryMiddleware(Starlette(routes=[Route("/items/{item_id}", _item)]), service="t")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test")


async def test_the_request_span_continues_the_callers_traceparent(
    lines: io.StringIO, spans: InMemorySpanExporter
) -> None:
    async with _client() as client:
        answer = await client.get("/items/missing", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 404
    (entry,) = entries(lines, log.name)
    assert entry["logging.googleapis.com/trace"] == TRACE
    assert entry["message"] == "looking up missing"
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /items/missing"
    assert span.kind == SpanKind.SERVER
    assert span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT, 16)
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["http.request.method"] == "GET"
    assert entry["logging.googleapis.com/spanId"] == f"{span.context.span_id:016x}"


async def test_the_request_span_continues_x_cloud_trace_context(
    lines: io.StringIO, spans: InMemorySpanExporter
) -> None:
    async with _client() as client:
        answer = await client.get(
            "/items/1", headers={"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/12345;o=1"}
        )
    assert answer.json()["traceparent"].split("-")[1] == CLOUD_TRACE
    (entry,) = entries(lines, log.name)
    assert entry["logging.googleapis.com/trace"] == CLOUD_TRACE
    (span,) = spans.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == 12345


async def test_a_request_without_trace_headers_starts_a_trace(lines: io.StringIO) -> None:
    async with _client() as client:
        answer = await client.get("/items/2")
    trace_id = answer.json()["traceparent"].split("-")[1]
    assert entries(lines, log.name)[0]["logging.googleapis.com/trace"] == trace_id


async def test_websocket_sessions_get_a_span_and_lifespan_passes_through(
    spans: InMemorySpanExporter,
) -> None:
    seen: list[tuple[str, str | None]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], current_traceparent()))

    middleware = TelemetryMiddleware(app)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        return None

    headers = [(b"traceparent", TRACEPARENT.encode())]
    await middleware({"type": "websocket", "path": "/ws", "headers": headers}, receive, send)
    await middleware({"type": "lifespan"}, receive, send)
    assert seen[0][0] == "websocket" and seen[0][1] is not None
    assert seen[0][1].split("-")[1] == TRACE
    assert seen[1] == ("lifespan", None)
    (span,) = spans.get_finished_spans()
    assert span.name == "WEBSOCKET /ws"
