"""JSON log lines in Cloud Logging's structured format, set up once per process.

One line per record, on stdout: ``severity``, ``message``, ``time``, ``logger``, the
trace and span of the current OpenTelemetry span (``logging.googleapis.com/trace``,
``.../spanId``, ``.../trace_sampled``), ``serviceContext``, the correlation fields
of ``log_context`` (``executionId``, ``stepId``, ``runId``, ``tenant``) and whatever
a call passes as ``extra={"json_fields": {...}}``. A traceback stays inside its
entry's ``message`` (Error Reporting reads it there), never one entry per line.

The servers' own loggers (uvicorn, gunicorn, which functions-framework runs) are
routed through the same handler.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

from shared.observability._context import current_log_fields

__all__ = [
    "SERVER_LOGGERS",
    "JsonFormatter",
    "JsonHandler",
    "configure_logging",
    "uvicorn_log_config",
]

SERVER_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
)
"""Loggers that servers give handlers of their own (and ``propagate = False``)."""

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
_RESERVED = frozenset(
    {
        "severity",
        "message",
        "time",
        "logger",
        "serviceContext",
        "@type",
        TRACE_KEY,
        SPAN_KEY,
        SAMPLED_KEY,
    }
)


def severity(levelno: int) -> str:
    """Cloud Logging's severity for a ``logging`` level (custom levels round up)."""
    if levelno <= logging.NOTSET:
        return "DEFAULT"
    if levelno <= logging.DEBUG:
        return "DEBUG"
    if levelno <= logging.INFO:
        return "INFO"
    if levelno <= logging.WARNING:
        return "WARNING"
    if levelno <= logging.ERROR:
        return "ERROR"
    return "CRITICAL"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def __init__(self, service: str, project: str = "") -> None:
        super().__init__()
        self.service = service
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        entry: dict[str, Any] = {
            "severity": severity(record.levelno),
            "message": message,
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        self._trace(entry)
        entry["serviceContext"] = {"service": self.service}
        entry.update(current_log_fields())
        extra = getattr(record, "json_fields", None)
        if isinstance(extra, dict):
            entry.update({k: v for k, v in extra.items() if k not in _RESERVED})
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["@type"] = ERROR_EVENT  # an Error Reporting event even with text before it
        if record.name == "uvicorn.access":
            _http_request(entry, record)
        try:
            return json.dumps(entry, default=str, ensure_ascii=False)
        except (TypeError, ValueError):  # odd keys or a cycle in json_fields: keep the line
            return json.dumps({str(k): str(v) for k, v in entry.items()}, ensure_ascii=False)

    def _trace(self, entry: dict[str, Any]) -> None:
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return
        trace_id = f"{ctx.trace_id:032x}"
        if self.project:
            trace_id = f"projects/{self.project}/traces/{trace_id}"
        entry[TRACE_KEY] = trace_id
        entry[SPAN_KEY] = f"{ctx.span_id:016x}"
        entry[SAMPLED_KEY] = ctx.trace_flags.sampled


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _http_request(entry: dict[str, Any], record: logging.LogRecord) -> None:
    """uvicorn's access line as Cloud Logging's ``httpRequest`` (args: client, method,
    path, HTTP version, status)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        entry["httpRequest"] = {
            "requestMethod": str(method),
            "requestUrl": str(path),
            "protocol": f"HTTP/{version}",
            "status": status,
            "remoteIp": str(client).rsplit(":", 1)[0],
        }


class JsonHandler(logging.Handler):
    """Writes formatted records, one per line, to a stream (default: the current stdout)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self.stream or sys.stdout
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _project() -> str:
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("WFE_PROJECT") or ""


def configure_logging(
    service: str,
    *,
    level: str = "INFO",
    stream: IO[str] | None = None,
    project: str | None = None,
) -> None:
    """Route every log record of the process to one JSON-lines handler on the root logger.

    Idempotent: a second call updates the handler (service, level, stream) instead of
    adding one. Plain ``StreamHandler``s on the root logger (functions-framework's
    text handler, ``basicConfig``) are removed, the servers' loggers
    (``SERVER_LOGGERS``) lose their own handlers and propagate to the root, and
    Python warnings are logged (``py.warnings``). Servers that set up their loggers
    after this ran (gunicorn's uvicorn worker does, after the app is imported) are
    taken back by calling it again once they have started.

    Args:
        service: ``serviceContext.service`` of every entry (the function's name).
        level: the root logger's level (``DEBUG`` ... ``CRITICAL``).
        stream: where lines go (default: ``sys.stdout`` at the time of each write).
        project: the project of trace names (default: ``GOOGLE_CLOUD_PROJECT``, then
            ``WFE_PROJECT``; none: bare trace ids).
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, JsonHandler)), None)
    if handler is None:
        handler = JsonHandler(stream)
        root.addHandler(handler)
    handler.stream = stream
    handler.setFormatter(JsonFormatter(service, _project() if project is None else project))
    for other in list(root.handlers):
        if type(other) is logging.StreamHandler:  # exactly: not pytest's capture handlers
            root.removeHandler(other)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # ``warnings`` become entries too, not bare stderr text
    for name in SERVER_LOGGERS:
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate = True
        server.disabled = False


def json_handler_factory(service: str = "wfe") -> logging.Handler:
    """The root's JSON handler (installed now if missing), for ``dictConfig``'s ``()``."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, JsonHandler)), None)
    if handler is None:
        configure_logging(service)
        handler = next(h for h in root.handlers if isinstance(h, JsonHandler))
    return handler


def uvicorn_log_config(service: str = "wfe") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``.

    uvicorn applies its log config when it starts and would otherwise give its loggers
    text handlers. This one gives ``uvicorn`` the root's JSON handler (installing it
    if ``configure_logging`` was not called yet) and lets ``uvicorn.error`` and
    ``uvicorn.access`` propagate to it; the root logger's own handlers are left alone.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": {"()": f"{__name__}.json_handler_factory", "service": service}},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "propagate": False},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
