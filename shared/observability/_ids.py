"""The tracer of the ``none`` exporter, and ``traceparent`` in and out, made cheap.

With nothing exported, a span only needs ids: a child keeps its parent's trace id,
flags and trace state and gets a fresh span id; a root gets a fresh trace id. No SDK,
no sampler, no span processor: about a microsecond a span, which matters on the
engine's per-step path.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AnyValue, Attributes

__all__ = ["IdOnlyTracer", "IdOnlyTracerProvider", "format_traceparent", "parse_traceparent"]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote span context of a W3C ``traceparent``; None when it is not valid."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16))
    )


def format_traceparent(ctx: SpanContext) -> str:
    """``00-<trace id>-<span id>-<flags>`` of a valid span context."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 0xFF:02x}"


def _nonzero_bits(bits: int) -> int:
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


class IdOnlyTracer(Tracer):
    """Non-recording spans with real ids (the ``none`` exporter's tracer)."""

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent = trace.get_current_span(context).get_span_context()
        span_id = _nonzero_bits(64)
        if parent.is_valid:
            ctx = SpanContext(
                parent.trace_id,
                span_id,
                is_remote=False,
                trace_flags=parent.trace_flags,
                trace_state=parent.trace_state,
            )
        else:
            ctx = SpanContext(_nonzero_bits(128), span_id, is_remote=False, trace_flags=_UNSAMPLED)
        return NonRecordingSpan(ctx)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's type is private
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(name, context)
        with trace.use_span(span, end_on_exit=end_on_exit):
            yield span


class IdOnlyTracerProvider(TracerProvider):
    """Hands out the one ``IdOnlyTracer``."""

    _tracer = IdOnlyTracer()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, AnyValue] | None = None,
    ) -> Tracer:
        return self._tracer
