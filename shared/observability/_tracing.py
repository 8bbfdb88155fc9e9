"""OpenTelemetry traces: one tracer provider, the propagators, and the span helpers.

``configure_tracing`` picks the exporter once per process: ``none`` (the default:
nothing is exported and spans do not record, but every span still gets ids, so log
lines and the next hop carry a trace id), ``console`` (one JSON line per span on
stderr), ``otlp`` (OTLP over HTTP, configured by the ``OTEL_EXPORTER_OTLP_*``
variables) or ``gcp`` (Cloud Trace). The SDK and the exporters are imported only
when tracing is set up, the Cloud Trace one only when chosen.

Incoming context is read from W3C ``traceparent`` and Google's
``X-Cloud-Trace-Context``; outgoing hops (task bodies, Cloud Tasks headers, Pub/Sub
attributes) carry ``traceparent``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.observability._ids import (
    IdOnlyTracerProvider,
    format_traceparent,
    parse_traceparent,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TRACEPARENT",
    "Exporter",
    "SpanScope",
    "attached",
    "configure_tracing",
    "current_traceparent",
    "extract_context",
    "flush_tracing",
    "inject_context",
    "start_span",
    "traceparent_context",
    "use_tracer_provider",
]

log = logging.getLogger(__name__)

Exporter = Literal["none", "console", "otlp", "gcp"]
TRACEPARENT = "traceparent"
_SCOPE = "shared.observability"
_W3C = TraceContextTextMapPropagator()
_IDS = IdOnlyTracerProvider()


@dataclass
class _State:
    tracer: Tracer | None = None
    provider: trace.TracerProvider | None = None
    configured: str = ""
    """The exporter ``configure_tracing`` set up; empty while only the default is in use."""
    flush: Callable[[int], bool] | None = None
    """The SDK provider's ``force_flush`` when spans are exported."""


_state = _State()


def configure_tracing(exporter: str = "none", service: str = "wfe", *, project: str = "") -> None:
    """Set up the process's tracer provider; later calls are ignored (one provider).

    Args:
        exporter: ``none`` (ids only, nothing exported), ``console``, ``otlp`` or ``gcp``.
        service: the ``service.name`` resource attribute of exported spans.
        project: the Cloud Trace project (default: the exporter's own lookup).
    """
    if _state.configured:
        if exporter != _state.configured:
            log.warning("tracing already set up (%s); %s ignored", _state.configured, exporter)
        return
    if exporter not in ("none", "console", "otlp", "gcp"):
        raise ValueError(f"unknown trace exporter {exporter!r}")
    set_global_textmap(_propagator())
    if exporter == "none":
        _use(IdOnlyTracerProvider(), "none")
        return
    try:
        provider = _sdk_provider(exporter, service, project)
    except Exception:  # e.g. no credentials for Cloud Trace: serve anyway, untraced
        log.exception("trace exporter %s could not be set up; spans are not exported", exporter)
        _use(IdOnlyTracerProvider(), "none")
        return
    _use(provider, exporter)
    _state.flush = provider.force_flush
    trace.set_tracer_provider(provider)  # for libraries that trace on their own


def use_tracer_provider(provider: trace.TracerProvider | None) -> trace.TracerProvider | None:
    """Trace with ``provider`` from now on (tests: one with an in-memory exporter).

    ``None`` goes back to the unconfigured default. Returns the provider in use before.
    """
    previous = _state.provider
    _state.flush = None
    if provider is None:
        _state.tracer, _state.provider, _state.configured = None, None, ""
    else:
        _use(provider, "custom")
    return previous


def flush_tracing(timeout_millis: int = 5000) -> bool:
    """Export the spans still buffered (call at shutdown); True when nothing was left."""
    return _state.flush(timeout_millis) if _state.flush is not None else True


def _use(provider: trace.TracerProvider, exporter: str) -> None:
    _state.provider = provider
    _state.tracer = provider.get_tracer(_SCOPE)
    _state.configured = exporter


def _tracer() -> Tracer:
    tracer = _state.tracer
    if tracer is None:  # not configured: the ``none`` default until configure_tracing
        tracer = _state.tracer = _IDS.get_tracer(_SCOPE)
    return tracer


def _sdk_provider(exporter: str, service: str, project: str) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # The default sampler is parent-based: an upstream "not sampled" is honoured.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    span_exporter = _exporter(exporter, project)
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def _exporter(exporter: str, project: str) -> SpanExporter:
    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr, one line per span: stdout belongs to the JSON log lines.
        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + os.linesep
        )
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

    return CloudTraceSpanExporter(project_id=project or None)  # type: ignore[no-untyped-call]


# -- propagation ---------------------------------------------------------------------


@functools.cache
def _propagator() -> TextMapPropagator:
    """W3C and Google's header. Extraction runs in order and the last valid header wins:
    ``traceparent`` over ``X-Cloud-Trace-Context`` when a request carries both. Built on
    first use: the engine's path (task payloads) never needs Google's format."""
    from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
    from opentelemetry.propagators.composite import CompositePropagator

    return CompositePropagator([CloudTraceFormatPropagator(), _W3C])


def extract_context(carrier: Mapping[str, str], context: Context | None = None) -> Context:
    """The context ``carrier`` (headers, task fields, message attributes) carries.

    Reads ``traceparent``/``tracestate`` and ``X-Cloud-Trace-Context`` (any case);
    a carrier without a valid one gives ``context`` (default: an empty context).
    """
    lowered = {key.lower(): value for key, value in carrier.items()}
    return _propagator().extract(lowered, context)


def inject_context(context: Context | None = None) -> dict[str, str]:
    """``traceparent`` (and ``tracestate`` if any) of the current or given context."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context)
    return carrier


def current_traceparent() -> str | None:
    """The current span as a ``traceparent`` value; None outside any valid span."""
    ctx = trace.get_current_span().get_span_context()
    return format_traceparent(ctx) if ctx.is_valid else None


def traceparent_context(value: str | None) -> Context | None:
    """A context whose current span is the remote one ``value`` names; None when
    ``value`` is absent or not a valid ``traceparent``."""
    ctx = parse_traceparent(value) if value else None
    return trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx is not None else None


# -- spans ---------------------------------------------------------------------------


class SpanScope:
    """A span that is current inside a ``with`` block (a lean ``start_as_current_span``).

    An exception leaving the block is recorded on the span and marks it failed.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_token", "span")

    def __init__(
        self,
        name: str,
        parent: Context | None,
        kind: SpanKind,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> None:
        self._name = name
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self.span: Span = trace.INVALID_SPAN

    def __enter__(self) -> Span:
        span = _tracer().start_span(
            self._name, context=self._parent, kind=self._kind, attributes=self._attributes
        )
        self.span = span
        self._token = otel_context.attach(trace.set_span_in_context(span, self._parent))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self.span
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        otel_context.detach(self._token)
        span.end()


def start_span(
    name: str,
    *,
    parent: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> SpanScope:
    """``with start_span("store.transaction") as span:``: a child of ``parent`` (default:
    the current context), current inside the block."""
    return SpanScope(name, parent, kind, attributes)


class _Attached:
    __slots__ = ("_context", "_token")

    def __init__(self, context: Context | None) -> None:
        self._context = context
        self._token: Token[Context] | None = None

    def __enter__(self) -> None:
        if self._context is not None:
            self._token = otel_context.attach(self._context)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)


def attached(context: Context | None) -> _Attached:
    """``with attached(context):`` makes ``context`` current inside the block; ``None``
    changes nothing."""
    return _Attached(context)
