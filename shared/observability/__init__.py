"""Structured logs and traces, set up the same way by every function, the dev server and
the CLI.

At startup::

    configure_logging("create", level=settings.log_level)
    configure_tracing(settings.trace_exporter, "create", project=settings.project)
    app = TelemetryMiddleware(app, service="create")

and ``uvicorn.run(app, log_config=uvicorn_log_config("create"))`` when serving with
uvicorn. Code that works on one execution wraps it in ``log_context(...)``; hops
carry ``inject_context()`` and are continued with ``extract_context(...)``.
"""

from shared.observability._context import (
    bind_log_context,
    current_log_fields,
    log_context,
    reset_log_context,
)
from shared.observability._logging import (
    SERVER_LOGGERS,
    JsonFormatter,
    JsonHandler,
    configure_logging,
    uvicorn_log_config,
)
from shared.observability._middleware import TelemetryMiddleware
from shared.observability._tracing import (
    TRACEPARENT,
    Exporter,
    SpanScope,
    attached,
    configure_tracing,
    current_traceparent,
    extract_context,
    flush_tracing,
    inject_context,
    start_span,
    traceparent_context,
    use_tracer_provider,
)

__all__ = [
    "SERVER_LOGGERS",
    "TRACEPARENT",
    "Exporter",
    "JsonFormatter",
    "JsonHandler",
    "SpanScope",
    "TelemetryMiddleware",
    "attached",
    "bind_log_context",
    "configure_logging",
    "configure_tracing",
    "current_log_fields",
    "current_traceparent",
    "extract_context",
    "flush_tracing",
    "inject_context",
    "log_context",
    "reset_log_context",
    "start_span",
    "traceparent_context",
    "use_tracer_provider",
    "uvicorn_log_config",
]
